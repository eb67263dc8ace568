//! An acknowledgement on its way, for callers that keep many in flight: a blocking thread
//! emits 64 times and collects the answers later, instead of 64 threads each waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::{runtime, Args, Error};

/// The acknowledgement of one emit, to wait for ([`wait`](Self::wait)), to check without
/// blocking ([`try_take`](Self::try_take)) or to `.await`. It resolves once: with the
/// server's answer, [`Error::AckTimeout`] when the timeout given to the emit ran out, or
/// [`Error::Disconnected`] when the connection it went out on was lost. Dropping it does not
/// cancel the emit; the answer is then dropped.
///
/// ```no_run
/// # use std::time::Duration;
/// # use sio_client::Client;
/// # fn main() -> Result<(), sio_client::Error> {
/// let client = Client::builder("http://localhost:3000").connect()?;
/// let pending: Vec<_> = (0..64)
///     .map(|i| client.emit_with_ack_handle("work", i, Duration::from_secs(5)))
///     .collect::<Result<_, _>>()?;
/// for ack in pending {
///     println!("{:?}", ack.wait()?.values());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AckHandle {
    reply: oneshot::Receiver<Result<Args, Error>>,
}

impl AckHandle {
    pub(crate) fn new(reply: oneshot::Receiver<Result<Args, Error>>) -> AckHandle {
        AckHandle { reply }
    }

    /// Blocks until the answer (or its timeout). Works from inside a tokio runtime too.
    pub fn wait(self) -> Result<Args, Error> {
        runtime::block_on(self)
    }

    /// The answer if it has arrived, without blocking; `None` while it is still on its way.
    /// The answer is given once: a later call returns `Some(Err(Error::Disconnected(..)))`.
    pub fn try_take(&mut self) -> Option<Result<Args, Error>> {
        match self.reply.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(gone())),
        }
    }
}

fn gone() -> Error {
    // The reply's sender went without a word: the client's driver ended (closed or dropped).
    Error::Disconnected(crate::DisconnectReason::IoClientDisconnect)
}

impl Future for AckHandle {
    type Output = Result<Args, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.reply)
            .poll(cx)
            .map(|answer| answer.unwrap_or_else(|_| Err(gone())))
    }
}
