//! [`warnings`]: the `log::warn!` records of a test binary, for tests that check what the
//! library reports (a recorder installed as the process's logger on first use).

use std::sync::{Mutex, Once, PoisonError};

struct Recorder(Mutex<Vec<String>>);

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() == log::Level::Warn {
            let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            all.push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Every warning logged so far whose text `keep` accepts. The first call installs the
/// recorder (so call it once before the code under test logs); a binary that installed
/// another logger records nothing.
pub fn warnings(keep: impl Fn(&str) -> bool) -> Vec<String> {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if log::set_logger(&RECORDER).is_ok() {
            log::set_max_level(log::LevelFilter::Warn);
        }
    });
    let all = RECORDER.0.lock().unwrap_or_else(PoisonError::into_inner);
    all.iter().filter(|w| keep(w)).cloned().collect()
}
