//! The production compose file (`deploy/compose.yaml`) checked against the code: every image
//! pinned, only environment variables the services read, health checks and replicas, the
//! MongoDB replica set with majority writes, the NATS cluster with JetStream, and the load
//! balancer's split. Reads files only; needs no running server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mongodb::options::{Acknowledgment, ClientOptions};
use serde_yaml_ng::Value;

const COMPOSE: &str = "deploy/compose.yaml";
const DOCKERFILE: &str = "deploy/Dockerfile";
const NGINX: &str = "deploy/nginx.conf";
/// Images of SimplePro's own binaries start with this.
const SIMPLEPRO_IMAGE: &str = "ghcr.io/simplepro/";
/// Crates whose `#[arg(env = "…")]` attributes define the services' environment.
const CONFIG_CRATES: [&str; 5] = [
    "platform",
    "command-api",
    "query-api",
    "projector",
    "history",
];
/// The long-running services and the port each listens on by its `…_LISTEN` variable.
const SERVICES: [(&str, &str); 3] = [
    ("command-api", "SIMPLEPRO_COMMAND_API_LISTEN"),
    ("query-api", "SIMPLEPRO_QUERY_API_LISTEN"),
    ("projector", "SIMPLEPRO_PROJECTOR_LISTEN"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Fails with every problem found, one a line, under `what`.
fn assert_none(what: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{what}:\n  - {}",
        problems.join("\n  - ")
    );
}

/// One service of the compose file, with YAML merge keys applied.
struct Service {
    name: String,
    spec: Value,
}

impl Service {
    fn str_at(&self, key: &str) -> Option<&str> {
        self.spec.get(key).and_then(Value::as_str)
    }

    fn image(&self) -> Option<&str> {
        self.str_at("image")
    }

    fn is_simplepro(&self) -> bool {
        self.image().is_some_and(|i| i.starts_with(SIMPLEPRO_IMAGE))
    }

    /// A list or a string (split at whitespace) under `key`.
    fn words(&self, key: &str) -> Vec<String> {
        match self.spec.get(key) {
            Some(Value::Sequence(items)) => items.iter().map(scalar).collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }

    /// Entrypoint then command: what the container runs.
    fn argv(&self) -> Vec<String> {
        let mut argv = self.words("entrypoint");
        argv.extend(self.words("command"));
        argv
    }

    /// The SimplePro binary the service runs (its entrypoint's first word).
    fn binary(&self) -> Option<String> {
        self.is_simplepro()
            .then(|| self.argv().into_iter().next())
            .flatten()
    }

    /// Started by `docker compose up` (not only under a profile such as `ops`).
    fn starts_by_default(&self) -> bool {
        self.words("profiles").is_empty()
    }

    /// Runs once and exits (`restart: "no"`), as the rebuild and the history tool do.
    fn is_one_shot(&self) -> bool {
        self.str_at("restart") == Some("no")
    }

    fn replicas(&self) -> u64 {
        self.spec
            .get("deploy")
            .and_then(|d| d.get("replicas"))
            .and_then(Value::as_u64)
            .unwrap_or(1)
    }

    /// `environment:` as a mapping or as a list of `KEY=value`.
    fn environment(&self) -> BTreeMap<String, String> {
        match self.spec.get("environment") {
            Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|item| {
                    let item = scalar(item);
                    match item.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (item, String::new()),
                    }
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The healthcheck's test as one line, if there is one.
    fn healthcheck(&self) -> Option<String> {
        let test = self.spec.get("healthcheck")?.get("test")?;
        Some(match test {
            Value::Sequence(items) => items.iter().map(scalar).collect::<Vec<_>>().join(" "),
            other => scalar(other),
        })
    }

    /// Targets of the service's volumes (`source:target[:mode]`).
    fn volume_targets(&self) -> Vec<String> {
        self.words("volumes")
            .iter()
            .filter_map(|v| v.split(':').nth(1).map(str::to_owned))
            .collect()
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}

fn services() -> Vec<Service> {
    let text = read(COMPOSE);
    let mut doc: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{COMPOSE} is not valid YAML: {e}"));
    doc.apply_merge()
        .unwrap_or_else(|e| panic!("{COMPOSE}: a merge key (<<) is malformed: {e}"));
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .unwrap_or_else(|| panic!("{COMPOSE} has no `services:` mapping"));
    services
        .iter()
        .map(|(name, spec)| Service {
            name: scalar(name),
            spec: spec.clone(),
        })
        .collect()
}

fn simplepro_services(all: &[Service]) -> Vec<&Service> {
    let ours: Vec<&Service> = all.iter().filter(|s| s.is_simplepro()).collect();
    assert!(
        !ours.is_empty(),
        "{COMPOSE} has no service with an image under {SIMPLEPRO_IMAGE}"
    );
    ours
}

/// Pinned: a digest, or a tag (not `latest`) holding a version `<digit>.<digit>`.
fn pinned(image: &str) -> Result<(), String> {
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return if digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!("`{image}` has a malformed sha256 digest"))
        };
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last_segment.split_once(':') else {
        return Err(format!("`{image}` has no tag (that is `latest`)"));
    };
    if tag == "latest" {
        return Err(format!("`{image}` is tagged `latest`"));
    }
    let bytes = tag.as_bytes();
    let versioned = bytes
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit());
    if versioned {
        Ok(())
    } else {
        Err(format!(
            "`{image}`: tag `{tag}` names no exact version (want e.g. 7.0.14 or a digest)"
        ))
    }
}

/// Every `env = "NAME"` in the Rust sources under `dir`.
fn env_names_in(dir: &Path, names: &mut BTreeSet<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            env_names_in(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("reading a source file");
            names.extend(env_attributes(&text));
        }
    }
}

/// The names in `env = "NAME"` attributes of `text` (any spacing around `=`).
fn env_attributes(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("env") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + 3..].trim_start();
        rest = &rest[at + 3..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let Some(quoted) = after.trim_start().strip_prefix('"') else {
            continue;
        };
        if let Some(end) = quoted.find('"') {
            names.push(quoted[..end].to_owned());
        }
    }
    names
}

/// Environment variables the configuration of `krate` reads (its own and `platform`'s).
fn env_names_read_by(krate: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    env_names_in(&repo_root().join("platform/src"), &mut names);
    env_names_in(&repo_root().join(krate).join("src"), &mut names);
    names
}

fn port_of(listen: &str) -> Option<&str> {
    listen.rsplit_once(':').map(|(_, port)| port)
}

#[test]
fn every_compose_image_is_pinned_to_a_version() {
    let services = services();
    let mut problems = Vec::new();
    for service in &services {
        match service.image() {
            Some(image) => {
                if let Err(reason) = pinned(image) {
                    problems.push(format!("service `{}`: {reason}", service.name));
                }
            }
            None => problems.push(format!(
                "service `{}` names no image (a build alone leaves the version unnamed)",
                service.name
            )),
        }
    }
    assert_none(&format!("{COMPOSE}: images not pinned"), &problems);
}

#[test]
fn every_dockerfile_base_image_is_pinned_to_a_version() {
    let text = read(DOCKERFILE);
    let mut stages = BTreeSet::new();
    let mut problems = Vec::new();
    let mut froms = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"))
        {
            continue;
        }
        froms += 1;
        let Some(image) = words.iter().skip(1).find(|w| !w.starts_with("--")) else {
            problems.push(format!("`{line}` names no image"));
            continue;
        };
        if !stages.contains(*image) {
            if let Err(reason) = pinned(image) {
                problems.push(reason);
            }
        }
        if let Some(at) = words.iter().position(|w| w.eq_ignore_ascii_case("AS")) {
            if let Some(stage) = words.get(at + 1) {
                stages.insert((*stage).to_owned());
            }
        }
    }
    assert!(froms > 0, "{DOCKERFILE} has no FROM line");
    assert_none(&format!("{DOCKERFILE}: base images not pinned"), &problems);
    for service in simplepro_services(&services()) {
        if let Some(build) = service.spec.get("build") {
            let dockerfile = build.get("dockerfile").map(scalar);
            assert_eq!(
                dockerfile.as_deref(),
                Some(DOCKERFILE),
                "service `{}` builds from another Dockerfile than {DOCKERFILE}",
                service.name
            );
        }
    }
}

#[test]
fn every_service_environment_key_is_one_the_configuration_reads() {
    let services = services();
    let mut problems = Vec::new();
    for service in simplepro_services(&services) {
        let Some(binary) = service.binary() else {
            problems.push(format!(
                "service `{}` names no binary as its entrypoint",
                service.name
            ));
            continue;
        };
        if !CONFIG_CRATES.contains(&binary.as_str()) {
            problems.push(format!(
                "service `{}` runs `{binary}`, which is none of {CONFIG_CRATES:?}",
                service.name
            ));
            continue;
        }
        let known = env_names_read_by(&binary);
        assert!(
            known.contains("MONGODB_URI") && known.len() > 10,
            "the scan of `env = \"…\"` attributes found too few names for `{binary}`: {known:?}"
        );
        let environment = service.environment();
        if environment.is_empty() {
            problems.push(format!("service `{}` has no `environment:`", service.name));
        }
        for key in environment.keys() {
            if !known.contains(key) {
                problems.push(format!(
                    "service `{}` sets `{key}`, which `{binary}` does not read (it reads: {})",
                    service.name,
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    assert_none(
        &format!("{COMPOSE}: unknown environment variables"),
        &problems,
    );
}

#[test]
fn every_secret_comes_from_a_substitution_that_must_be_set() {
    let services = services();
    let mut problems = Vec::new();
    for service in simplepro_services(&services) {
        for (key, value) in service.environment() {
            if !key.contains("SECRET") {
                continue;
            }
            let required = value.starts_with(&format!("${{{key}:?")) && value.ends_with('}');
            if !required {
                problems.push(format!(
                    "service `{}`: `{key}` is `{value}`; it must be `${{{key}:?…}}`, so that \
                     compose refuses to start without it",
                    service.name
                ));
            }
        }
    }
    assert_none(&format!("{COMPOSE}: secrets not substituted"), &problems);
}

#[test]
fn each_service_has_health_checks_and_a_second_instance() {
    let services = services();
    let ours = simplepro_services(&services);
    let mut problems = Vec::new();
    for (binary, listen_key) in SERVICES {
        let instances: Vec<&&Service> = ours
            .iter()
            .filter(|s| s.binary().as_deref() == Some(binary) && !s.is_one_shot())
            .collect();
        if instances.is_empty() {
            problems.push(format!("no service runs `{binary}`"));
            continue;
        }
        for service in &instances {
            let environment = service.environment();
            let Some(port) = environment.get(listen_key).and_then(|l| port_of(l)) else {
                problems.push(format!("service `{}` sets no `{listen_key}`", service.name));
                continue;
            };
            match service.healthcheck() {
                None => problems.push(format!("service `{}` has no healthcheck", service.name)),
                Some(test) => {
                    for path in ["/healthz", "/readyz"] {
                        let url = format!("127.0.0.1:{port}{path}");
                        if !test.contains(&url) {
                            problems.push(format!(
                                "service `{}`: its healthcheck `{test}` does not call {url}",
                                service.name
                            ));
                        }
                    }
                }
            }
        }
        let running: u64 = instances
            .iter()
            .filter(|s| s.starts_by_default())
            .map(|s| s.replicas())
            .sum();
        if binary == "projector" {
            // Projectors share the read models by a lease per model: each instance needs an
            // id of its own (its leases, its heartbeat and its JetStream consumer are named
            // after it), and between them they prefer every model.
            if running < 2 {
                problems.push(format!(
                    "{running} projector(s) start by default; at least 2 are needed"
                ));
            }
            let mut ids = std::collections::BTreeSet::new();
            let mut preferred = std::collections::BTreeSet::new();
            for service in instances.iter().filter(|s| s.starts_by_default()) {
                let environment = service.environment();
                match environment.get("SIMPLEPRO_PROJECTOR_INSTANCE") {
                    Some(id) if service.replicas() == 1 && ids.insert(id.clone()) => {}
                    _ => problems.push(format!(
                        "projector service `{}` needs an instance id of its own \
                         (SIMPLEPRO_PROJECTOR_INSTANCE, one replica)",
                        service.name
                    )),
                }
                match environment.get("SIMPLEPRO_PROJECTOR_MODELS") {
                    Some(models) => {
                        preferred.extend(models.split(',').map(|m| m.trim().to_owned()))
                    }
                    None => {
                        preferred.extend(read_models::Model::ALL.map(|m| m.as_str().to_owned()))
                    }
                }
            }
            for model in read_models::Model::ALL {
                if !preferred.contains(model.as_str()) {
                    problems.push(format!("no projector prefers the {} model", model.as_str()));
                }
            }
        } else if running < 2 {
            problems.push(format!(
                "`{binary}` runs {running} instance(s) by default; at least 2 are needed"
            ));
        }
    }
    assert_none(
        &format!("{COMPOSE}: services without health checks or replicas"),
        &problems,
    );
}

/// Services whose container runs `program` (the first word of entrypoint or command).
fn containers_running<'a>(
    services: &'a [Service],
    image_prefix: &str,
    program: &str,
) -> Vec<&'a Service> {
    services
        .iter()
        .filter(|s| s.image().is_some_and(|i| i.starts_with(image_prefix)))
        .filter(|s| s.argv().first().map(String::as_str) == Some(program))
        .collect()
}

/// The value after `flag` (`--flag value` or `--flag=value`) in `argv`.
fn flag_value<'a>(argv: &'a [String], flags: &[&str]) -> Option<&'a str> {
    argv.iter().enumerate().find_map(|(i, arg)| {
        flags.iter().find_map(|flag| {
            if arg == flag {
                argv.get(i + 1).map(String::as_str)
            } else {
                arg.strip_prefix(&format!("{flag}="))
            }
        })
    })
}

#[tokio::test]
async fn mongodb_is_a_three_member_replica_set_written_with_majority_and_journal() {
    let services = services();
    let members = containers_running(&services, "mongo:", "mongod");
    let mut problems = Vec::new();
    if members.len() != 3 {
        problems.push(format!(
            "{} services run mongod ({:?}); the replica set needs 3",
            members.len(),
            members.iter().map(|s| &s.name).collect::<Vec<_>>()
        ));
    }
    for member in &members {
        let argv = member.argv();
        if flag_value(&argv, &["--replSet"]) != Some("rs0") {
            problems.push(format!("`{}` does not run with --replSet rs0", member.name));
        }
        if argv.iter().any(|a| a == "--nojournal") {
            problems.push(format!("`{}` turns the journal off", member.name));
        }
        if !member.volume_targets().iter().any(|t| t == "/data/db") {
            problems.push(format!("`{}` keeps /data/db in no volume", member.name));
        }
    }
    let initiated = services.iter().any(|s| {
        let script = s.argv().join(" ");
        script.contains("rs.initiate")
            && script.contains("rs0")
            && members
                .iter()
                .all(|m| script.contains(&format!("{}:27017", m.name)))
    });
    if !initiated {
        problems.push("no one-shot service runs rs.initiate for rs0 with all three members".into());
    }
    let member_hosts: BTreeSet<String> = members
        .iter()
        .map(|m| format!("{}:27017", m.name))
        .collect();
    for service in simplepro_services(&services) {
        let Some(uri) = service.environment().get("MONGODB_URI").cloned() else {
            problems.push(format!("service `{}` sets no MONGODB_URI", service.name));
            continue;
        };
        let options = match ClientOptions::parse(&uri).await {
            Ok(options) => options,
            Err(e) => {
                problems.push(format!(
                    "service `{}`: MONGODB_URI `{uri}` does not parse: {e}",
                    service.name
                ));
                continue;
            }
        };
        let hosts: BTreeSet<String> = options.hosts.iter().map(ToString::to_string).collect();
        if hosts != member_hosts {
            problems.push(format!(
                "service `{}`: MONGODB_URI lists {hosts:?}, the members are {member_hosts:?}",
                service.name
            ));
        }
        if options.repl_set_name.as_deref() != Some("rs0") {
            problems.push(format!(
                "service `{}`: MONGODB_URI lacks replicaSet=rs0",
                service.name
            ));
        }
        let concern = options.write_concern.unwrap_or_default();
        if concern.w != Some(Acknowledgment::Majority) || concern.journal != Some(true) {
            problems.push(format!(
                "service `{}`: MONGODB_URI `{uri}` must write with w=majority&journal=true \
                 (parsed: w {:?}, journal {:?})",
                service.name, concern.w, concern.journal
            ));
        }
    }
    assert_none(&format!("{COMPOSE}: MongoDB"), &problems);
}

#[test]
fn nats_is_a_three_node_jetstream_cluster_and_the_stream_keeps_three_replicas() {
    let services = services();
    let nodes = containers_running(&services, "nats:", "nats-server");
    let mut problems = Vec::new();
    if nodes.len() != 3 {
        problems.push(format!(
            "{} services run nats-server ({:?}); the cluster needs 3",
            nodes.len(),
            nodes.iter().map(|s| &s.name).collect::<Vec<_>>()
        ));
    }
    let node_names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut cluster_names = BTreeSet::new();
    let mut server_names = BTreeSet::new();
    for node in &nodes {
        let argv = node.argv();
        if !argv.iter().any(|a| a == "--jetstream" || a == "-js") {
            problems.push(format!("`{}` runs without JetStream", node.name));
        }
        match flag_value(&argv, &["--store_dir", "-sd"]) {
            Some(dir) if node.volume_targets().iter().any(|t| t == dir) => {}
            Some(dir) => problems.push(format!(
                "`{}`: the JetStream store {dir} is in no volume",
                node.name
            )),
            None => problems.push(format!("`{}` names no JetStream store dir", node.name)),
        }
        match flag_value(&argv, &["--name", "--server_name", "-n"]) {
            Some(name) => {
                server_names.insert(name.to_owned());
            }
            None => problems.push(format!("`{}` has no server name", node.name)),
        }
        cluster_names.insert(flag_value(&argv, &["--cluster_name"]).map(str::to_owned));
        let routes: BTreeSet<&str> = flag_value(&argv, &["--routes"])
            .unwrap_or_default()
            .split(',')
            .filter_map(|r| r.trim().strip_prefix("nats://"))
            .filter_map(|r| r.split(':').next())
            .collect();
        if !node_names.iter().all(|n| routes.contains(n)) {
            problems.push(format!(
                "`{}`: --routes {routes:?} do not reach every node {node_names:?}",
                node.name
            ));
        }
    }
    if cluster_names.len() != 1 || cluster_names.contains(&None) {
        problems.push(format!(
            "the nodes' --cluster_name differ or are missing: {cluster_names:?}"
        ));
    }
    if server_names.len() != nodes.len() {
        problems.push(format!(
            "the nodes' server names are not unique: {server_names:?}"
        ));
    }
    for service in simplepro_services(&services) {
        let environment = service.environment();
        let urls = environment.get("NATS_URL").cloned().unwrap_or_default();
        let hosts: BTreeSet<&str> = urls
            .split(',')
            .filter_map(|u| u.trim().strip_prefix("nats://"))
            .filter_map(|u| u.split(':').next())
            .collect();
        if hosts != node_names {
            problems.push(format!(
                "service `{}`: NATS_URL `{urls}` must list every node {node_names:?}",
                service.name
            ));
        }
        let replicas = environment
            .get("SIMPLEPRO_NATS_REPLICAS")
            .map(String::as_str);
        if replicas != Some("3") {
            problems.push(format!(
                "service `{}`: SIMPLEPRO_NATS_REPLICAS is {replicas:?}, the stream needs 3",
                service.name
            ));
        }
    }
    assert_none(&format!("{COMPOSE}: NATS"), &problems);
}

#[tokio::test]
async fn the_services_accept_the_compose_nats_url() {
    let services = services();
    let urls: BTreeSet<String> = simplepro_services(&services)
        .iter()
        .filter_map(|s| s.environment().get("NATS_URL").cloned())
        .collect();
    let mut problems = Vec::new();
    for url in urls {
        // Retries in the background on an unreachable server; fails at once on a URL it
        // cannot parse.
        if let Err(e) = events::bus::connect_nats(&url, "deployment-check").await {
            problems.push(format!("NATS_URL `{url}`: {e}"));
        }
    }
    assert_none(
        &format!("{COMPOSE}: the services would not start"),
        &problems,
    );
}

#[test]
fn the_load_balancer_sends_reads_to_the_query_api_and_commands_to_the_command_api() {
    let services = services();
    let conf = read(NGINX);
    let mut problems = Vec::new();
    let mounted = services.iter().any(|s| {
        s.image().is_some_and(|i| i.starts_with("nginx:"))
            && s.words("volumes")
                .iter()
                .any(|v| v.starts_with("./nginx.conf:/etc/nginx/nginx.conf"))
    });
    if !mounted {
        problems.push(format!("no nginx service mounts {NGINX}"));
    }
    let ours = simplepro_services(&services);
    for (binary, listen_key) in [SERVICES[0], SERVICES[1]] {
        let port = ours
            .iter()
            .find(|s| s.binary().as_deref() == Some(binary))
            .and_then(|s| s.environment().get(listen_key).cloned())
            .and_then(|l| port_of(&l).map(str::to_owned));
        match port {
            Some(port) if conf.contains(&format!("server {binary}:{port}")) => {}
            other => problems.push(format!(
                "{NGINX} has no upstream `server {binary}:<port>` for the port it listens on \
                 ({other:?})"
            )),
        }
    }
    for needle in [
        "location /v1/",
        "proxy_pass http://query_api",
        "proxy_pass http://command_api",
        "GET|HEAD",
    ] {
        if !conf.contains(needle) {
            problems.push(format!("{NGINX} lacks `{needle}`"));
        }
    }
    assert_none(&format!("{NGINX}: routing"), &problems);
}

#[test]
fn a_broken_compose_entry_is_named_by_the_checks() {
    assert!(pinned("mongo:7.0.14").is_ok());
    assert!(pinned("nats:2.15.2-alpine").is_ok());
    assert!(pinned(&format!("nginx@sha256:{}", "a".repeat(64))).is_ok());
    assert!(pinned("mongo").unwrap_err().contains("no tag"));
    assert!(pinned("mongo:latest").unwrap_err().contains("latest"));
    assert!(pinned("mongo:7").unwrap_err().contains("no exact version"));
    assert!(pinned("localhost:5000/simplepro")
        .unwrap_err()
        .contains("no tag"));
    assert_eq!(
        env_attributes(
            "#[arg(long, env = \"A_B\")] x; #[arg(env=\"C\")] env!(\"NOT\") myenv = \"NO\""
        ),
        vec!["A_B".to_owned(), "C".to_owned()]
    );
}
