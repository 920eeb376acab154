//! Where results go: stdout, line by line, with a closed pipe turned into a quiet exit.

use std::io::{IsTerminal, Write};

use crate::error::Result;

/// The output of a command.
pub struct Out {
    w: Box<dyn Write>,
    /// Whether stdout is a terminal (redraw in place, flush every line).
    pub tty: bool,
}

impl Out {
    /// Standard output.
    pub fn stdout() -> Out {
        let tty = std::io::stdout().is_terminal();
        Out {
            w: Box::new(std::io::BufWriter::new(std::io::stdout())),
            tty,
        }
    }

    /// Any writer (tests), never a terminal.
    pub fn to(w: Box<dyn Write>) -> Out {
        Out { w, tty: false }
    }

    /// Writes one line. A closed pipe becomes [`crate::Error::BrokenPipe`].
    pub fn line(&mut self, s: &str) -> Result<()> {
        self.w.write_all(s.as_bytes())?;
        self.w.write_all(b"\n")?;
        Ok(())
    }

    /// Writes raw text.
    pub fn raw(&mut self, s: &str) -> Result<()> {
        self.w.write_all(s.as_bytes())?;
        Ok(())
    }

    /// Flushes what was written so far.
    pub fn flush(&mut self) -> Result<()> {
        self.w.flush()?;
        Ok(())
    }
}
