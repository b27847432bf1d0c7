//! The services under test (command-api, projector, query-api) as child processes, for tests
//! that crash, pause and restart them: a binary started with arguments and environment,
//! logging to a file, started again with the same settings, and killed on drop.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct ServiceProcess {
    name: String,
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl ServiceProcess {
    /// Starts `binary args…` with `env` added to this process's environment; standard output
    /// and error are appended to `log`, so the log of every run of the service is kept.
    pub fn start(
        name: &str,
        binary: &Path,
        args: Vec<String>,
        env: Vec<(String, String)>,
        log: &Path,
    ) -> Self {
        let mut process = ServiceProcess {
            name: name.to_owned(),
            binary: binary.to_owned(),
            args,
            env,
            log: log.to_owned(),
            child: None,
        };
        process.restart();
        process
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Sets (or with `None` removes) an environment variable for the next (re)start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Starts the service again with the same binary, arguments and environment.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let _ = writeln!(log, "--- starting {}", self.name);
        let err = log.try_clone().expect("clone a log file handle");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// How the process ended, if it has (without waiting).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to end on its own; forgets it once it has.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL, as a crash: nothing is flushed or acknowledged.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and up to 20 s for a graceful stop, then SIGKILL.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        if self.wait_exit(Duration::from_secs(20)).is_none() {
            self.kill9();
        }
    }

    /// SIGSTOP: the process holds its connections and memory but runs nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`ServiceProcess::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let Some(child) = &self.child else {
            panic!("{} is not running", self.name);
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill {signal}: {e}"));
        assert!(status.success(), "kill {signal} {} failed", self.name);
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
