//! Logging through tracing-subscriber: human-readable or JSON lines on stderr (stdout stays
//! free for what CLI commands print). `RUST_LOG`, when set, wins over `log.level`.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber; a second call is a no-op.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = wants_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let _ = subscriber(config.format, filter, ansi, std::io::stderr).try_init();
}

/// Colour only for a person at a terminal: escape codes in a file or a log collector are
/// noise. `NO_COLOR` (set and not empty) turns it off, as tracing-subscriber's default does.
fn wants_colour(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
        LogFormat::Pretty => Box::new(builder.finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer, to read what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log_one_line(format: LogFormat, ansi: bool) -> String {
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = subscriber(format, EnvFilter::new("info"), ansi, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(user_id = "alice", "mutation");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn pretty_lines_carry_escape_codes_only_when_colour_is_on() {
        let plain = log_one_line(LogFormat::Pretty, false);
        assert!(
            plain.contains("mutation") && plain.contains("alice"),
            "{plain:?}"
        );
        assert!(
            !plain.contains('\x1b'),
            "escape codes without colour: {plain:?}"
        );
        // The same line with colour does carry them: the check above can see them.
        assert!(log_one_line(LogFormat::Pretty, true).contains("\x1b["));
        assert!(!log_one_line(LogFormat::Json, false).contains('\x1b'));
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        assert!(!wants_colour(false, None), "stderr piped or in a file");
        assert!(wants_colour(true, None));
        assert!(!wants_colour(true, Some("1".into())));
        assert!(
            wants_colour(true, Some("".into())),
            "an empty NO_COLOR does not count"
        );
    }
}
