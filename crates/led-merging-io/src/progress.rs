//! Progress of long work on stderr: a bar on a terminal; without one (a job log, `| tee`), a
//! plain line every few seconds with the position, percentage, rate and time left.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// Seconds between two progress lines when stderr is not a terminal.
pub const LOG_INTERVAL: Duration = Duration::from_secs(5);

/// A progress bar of `len` units named `msg`; hidden unless `show`. `units` is an indicatif
/// template fragment for position, total and rate (`{pos}/{len} samples, {per_sec}`).
pub fn bar(
    len: u64,
    msg: impl Into<std::borrow::Cow<'static, str>>,
    units: &str,
    show: bool,
) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let terminal = std::io::stderr().is_terminal();
    let (template, target) = if terminal {
        (
            format!("{{msg}} [{{bar:40}}] {units} {{eta}}"),
            ProgressDrawTarget::stderr(),
        )
    } else {
        (
            format!("{{msg}}: ({{percent}} %) {units}, {{eta}} left"),
            ProgressDrawTarget::term_like_with_hz(Box::new(LogLines::default()), 1),
        )
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    bar.set_style(
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// End a bar from [`bar`]: cleared on a terminal; without one, its final state (100 %) is
/// written as the last line.
pub fn finish(bar: &ProgressBar) {
    if std::io::stderr().is_terminal() {
        bar.finish_and_clear();
    } else {
        bar.finish();
    }
}

/// A "terminal" that writes each drawn state as a line to stderr, at most every
/// [`LOG_INTERVAL`], and ignores cursor movement.
#[derive(Debug, Default)]
struct LogLines {
    /// When the last line was written, and whether it was the final state's.
    last: Mutex<(Option<Instant>, bool)>,
}

impl TermLike for LogLines {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        // The final state (see `finish`) is always written, once.
        let done = s.contains("(100 %)");
        let recent = last.0.is_some_and(|t| t.elapsed() < LOG_INTERVAL);
        if s.trim().is_empty() || last.1 || (!done && recent) {
            return Ok(());
        }
        *last = (Some(Instant::now()), done);
        writeln!(std::io::stderr(), "{}", s.trim_end())
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
