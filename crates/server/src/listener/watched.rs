//! The clock of one connection (docs/behaviour.md "Connections"): how long it may take to send
//! a request's headers (from accept, or from the first byte after a keep-alive pause), how long
//! it may sit idle between requests, and how long a write may stall on a peer that does not
//! read. Enforced on the socket itself by [`Watched`], an I/O wrapper between the socket (or the
//! TLS stream) and hyper, which also stays under an upgraded WebSocket, so the connection's
//! ticket ([`super::admission::Ticket`]) lives exactly as long as the socket.
//!
//! hyper answers a request it cannot parse (too many or too large headers, a bad request line)
//! with a bodiless 400/414/431 of its own; [`Watched`] replaces those bytes with the same
//! status in AWS's error format ([`super::canned`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::admission::Ticket;
use super::canned::{self, Refusal};

/// The timeouts of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To receive a request's headers.
    pub header: Duration,
    /// Idle between two requests of a keep-alive connection.
    pub keepalive: Duration,
    /// A write that makes no progress this long fails (a peer that does not read).
    pub write_stall: Duration,
}

/// What the request side knows about a connection, shared by [`Watched`] (the socket) and
/// [`super::service::Watching`] (the requests).
#[derive(Debug)]
pub struct ConnWatch {
    origin: Instant,
    timeouts: Timeouts,
    in_flight: AtomicUsize,
    served: AtomicU64,
    /// Milliseconds since `origin` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `origin` + 1 of the first byte received while idle; 0: none.
    head_started: AtomicU64,
    upgraded: AtomicBool,
    h2: AtomicBool,
}

/// HTTP/2's connection preface starts like this.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl ConnWatch {
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            origin: Instant::now(),
            timeouts,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            h2: AtomicBool::new(false),
        })
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.origin + Duration::from_millis(millis)
    }

    /// A request's headers arrived and a handler runs.
    pub fn begin_request(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started.store(0, Ordering::Relaxed);
    }

    /// A handler finished (or its request went away).
    pub fn end_request(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
        self.idle_since.store(self.millis(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection became a WebSocket: its own timers (docs/protocol.md §6.5) apply now.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    fn bytes_read(&self, bytes: &[u8]) {
        if self.served.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
            && bytes.starts_with(H2_PREFACE)
        {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) {
            let _ = self.head_started.compare_exchange(
                0,
                self.millis() + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Whether part of a request's head has arrived and no handler runs (a 408 is then due).
    fn head_partial(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) != 0
    }

    /// When the connection is closed if nothing else happens; `None` while a handler runs or
    /// after an upgrade.
    pub fn read_deadline(&self) -> Option<Instant> {
        if self.is_upgraded() || self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let t = &self.timeouts;
        let started = self.head_started.load(Ordering::Relaxed);
        Some(if self.served.load(Ordering::Relaxed) == 0 {
            // The first request's headers are due within the timeout of the accept, however
            // slowly their bytes trickle in.
            self.origin + t.header
        } else if started != 0 {
            self.at(started - 1) + t.header
        } else {
            self.at(self.idle_since.load(Ordering::Relaxed)) + t.keepalive
        })
    }
}

/// A socket under a [`ConnWatch`].
pub struct Watched<IO> {
    io: IO,
    watch: Arc<ConnWatch>,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: bool,
    /// A replacement for hyper's automatic error answer, still to be written.
    pending: Vec<u8>,
    pending_at: usize,
    _ticket: Ticket,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<IO: AsyncRead + AsyncWrite + Unpin> Watched<IO> {
    pub fn new(io: IO, watch: Arc<ConnWatch>, ticket: Ticket) -> Self {
        let now = Instant::now();
        Self {
            io,
            watch,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_armed: false,
            pending: Vec::new(),
            pending_at: 0,
            _ticket: ticket,
        }
    }

    /// Writes what is left of a replacement answer.
    fn drain_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending_at < self.pending.len() {
            let pending = std::mem::take(&mut self.pending);
            let at = self.pending_at;
            let r = self.poll_io_write(cx, |io, cx| Pin::new(io).poll_write(cx, &pending[at..]));
            self.pending = pending;
            let n = ready!(r)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending_at += n;
        }
        if !self.pending.is_empty() {
            self.pending.clear();
            self.pending_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Runs a write on the socket under the write-stall timer.
    fn poll_io_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(&mut IO, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match op(&mut self.io, cx) {
            Poll::Ready(r) => {
                self.write_armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.write_armed {
                    self.write_armed = true;
                    let at = Instant::now() + self.watch.timeouts.write_stall;
                    self.write_timer.as_mut().reset(at);
                }
                if self.write_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out("the peer is not reading")));
                }
                Poll::Pending
            }
        }
    }

    /// hyper's own bodiless error answer, if `buf` is one (see the module comment).
    fn replaces(&self, buf: &[u8]) -> Option<Refusal> {
        if self.watch.is_upgraded() || self.watch.h2.load(Ordering::Relaxed) {
            return None;
        }
        let status = canned::automatic_error_status(buf)?;
        let head = &buf[..buf.len().min(2048)];
        let ours = head
            .windows(b"x-amzn-requestid".len())
            .any(|w| w.eq_ignore_ascii_case(b"x-amzn-requestid"));
        (!ours).then(|| Refusal::for_parse_error(status))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.watch.read_deadline() {
            if this.read_armed != Some(deadline) {
                this.read_timer.as_mut().reset(deadline);
                this.read_armed = Some(deadline);
            }
            if this.read_timer.as_mut().poll(cx).is_ready() {
                if this.watch.head_partial() {
                    // Best effort: a peer that sent part of a request learns why it is cut off.
                    let refusal = canned::HEADER_TIMEOUT.to_bytes();
                    let _ = Pin::new(&mut this.io).poll_write(cx, &refusal);
                    let _ = Pin::new(&mut this.io).poll_flush(cx);
                }
                return Poll::Ready(Err(timed_out("connection timed out")));
            }
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.watch.bytes_read(new);
            }
        }
        r
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        if let Some(refusal) = this.replaces(buf) {
            this.pending = refusal.to_bytes();
            this.pending_at = 0;
            if let Poll::Ready(Err(e)) = this.drain_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        this.poll_io_write(cx, |io, cx| Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        let first = bufs.iter().find(|b| !b.is_empty());
        if let Some(refusal) = first.and_then(|b| this.replaces(b)) {
            this.pending = refusal.to_bytes();
            this.pending_at = 0;
            if let Poll::Ready(Err(e)) = this.drain_pending(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        this.poll_io_write(cx, |io, cx| Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        this.poll_io_write(cx, |io, cx| Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.drain_pending(cx))?;
        this.poll_io_write(cx, |io, cx| Pin::new(io).poll_shutdown(cx))
    }
}
