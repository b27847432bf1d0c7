//! A private database server for tests that crash it: PostgreSQL 15 with FerretDB in front,
//! configured as `./dev up` configures the shared one (durable commits, the GIN indexes that
//! FerretDB's equality filters need), each on its own port and data folder.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DatabaseServer {
    dir: PathBuf,
    pg_port: u16,
    /// The MongoDB wire port FerretDB listens on.
    pub port: u16,
    postgres: Option<Child>,
    ferretdb: Option<Child>,
}

fn env_path(name: &str, default: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| default.into())
}

fn pg_bin(program: &str) -> PathBuf {
    env_path("SIMPLEPRO_PG_BIN_DIR", "/usr/lib/postgresql/15/bin").join(program)
}

fn ferretdb_bin() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cache =
        std::env::var("SIMPLEPRO_CACHE").unwrap_or_else(|_| format!("{home}/.cache/simplepro"));
    env_path(
        "SIMPLEPRO_FERRETDB_BIN",
        &format!("{cache}/bin/ferretdb-v1.24.2"),
    )
}

fn gin_sql() -> PathBuf {
    env_path(
        "SIMPLEPRO_GIN_SQL",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../support/ferretdb-gin-indexes.sql"
        ),
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// PostgreSQL will not run as root: as root its programs run as the `postgres` account.
fn pg_command(program: &str) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(pg_bin(program));
        command
    } else {
        Command::new(pg_bin(program))
    }
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl DatabaseServer {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "simplepro-database-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the server's folder");
        if is_root() {
            run(
                Command::new("chown").arg("postgres:").arg(&dir),
                "chown of the server's folder",
            );
        }
        let data = dir.join("data");
        run(
            pg_command("initdb")
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .arg("--locale=C.UTF-8"),
            "initdb",
        );
        let mut server = DatabaseServer {
            dir,
            pg_port: crate::free_port(),
            port: crate::free_port(),
            postgres: None,
            ferretdb: None,
        };
        server.start_postgres();
        run(
            pg_command("psql")
                .args(server.psql_args("postgres"))
                .args(["-c", "CREATE DATABASE ferretdb"]),
            "CREATE DATABASE",
        );
        run(
            pg_command("psql")
                .args(server.psql_args("ferretdb"))
                .arg("-f")
                .arg(gin_sql()),
            "the GIN index trigger",
        );
        server.start_ferretdb();
        server
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    fn psql_args(&self, database: &str) -> Vec<String> {
        [
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &self.pg_port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn start_postgres(&mut self) {
        assert!(self.postgres.is_none(), "PostgreSQL already running");
        let settings = [
            "listen_addresses=127.0.0.1".to_owned(),
            format!("port={}", self.pg_port),
            format!("unix_socket_directories={}", self.dir.display()),
            // The durability the shared server runs with (see `./dev`).
            "fsync=on".to_owned(),
            "synchronous_commit=on".to_owned(),
            "wal_level=minimal".to_owned(),
            "max_wal_senders=0".to_owned(),
            "synchronize_seqscans=off".to_owned(),
            "shared_buffers=64MB".to_owned(),
            "max_connections=150".to_owned(),
            "jit=off".to_owned(),
        ];
        let mut command = pg_command("postgres");
        command.arg("-D").arg(self.dir.join("data"));
        for setting in &settings {
            command.arg("-c").arg(setting);
        }
        // Its own process group, so a crash can kill the postmaster and every backend at once.
        let child = spawn_in_own_group(&mut command, &self.dir.join("postgres.log"));
        self.postgres = Some(child);
        // The port opens before recovery from the WAL has finished; wait until it serves.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = pg_command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &self.pg_port.to_string(), "-q"])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn start_ferretdb(&mut self) {
        assert!(self.ferretdb.is_none(), "FerretDB already running");
        let mut command = Command::new(ferretdb_bin());
        command.args([
            "--handler=postgresql",
            &format!(
                "--postgresql-url=postgres://postgres@127.0.0.1:{}/ferretdb",
                self.pg_port
            ),
            &format!("--listen-addr=127.0.0.1:{}", self.port),
            &format!("--state-dir={}", self.dir.display()),
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]);
        let child = spawn_in_own_group(&mut command, &self.dir.join("ferretdb.log"));
        self.ferretdb = Some(child);
        wait_for_port(self.port, "FerretDB");
    }

    /// Kills PostgreSQL (postmaster and every backend) and FerretDB with SIGKILL, as a crash
    /// would: nothing is flushed or shut down.
    pub fn kill9(&mut self) {
        for child in [self.postgres.take(), self.ferretdb.take()]
            .into_iter()
            .flatten()
        {
            kill_group(child);
        }
    }

    /// Starts both again on the same data, ports and folder (PostgreSQL recovers from its WAL).
    pub fn restart(&mut self) {
        self.start_postgres();
        self.start_ferretdb();
    }
}

fn spawn_in_own_group(command: &mut Command, log: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).expect("create a log file");
    let err = log.try_clone().expect("clone the log file");
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-9", "--", &group]).status();
    let _ = child.wait();
}

impl Drop for DatabaseServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
