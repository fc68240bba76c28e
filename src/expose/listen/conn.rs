//! One connection's task: serves it with hyper, tracks its phase through the request and
//! response bodies and the socket, and closes it when its phase's clock runs out.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::{Service, service_fn};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::*;

/// What a connection's task owns.
pub(super) struct ConnCtx {
    pub(super) app: Router,
    pub(super) guard: SlotGuard,
    pub(super) stop: watch::Receiver<bool>,
    /// Held until the task ends, so shutdown waits for it.
    pub(super) _done: watch::Receiver<()>,
    pub(super) peer: SocketAddr,
}

impl ConnCtx {
    pub(super) async fn serve_tls(
        mut self,
        stream: TrackedIo<tokio::net::TcpStream>,
        acceptor: TlsAcceptor,
    ) {
        let slot = self.guard.slot.clone();
        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
        let tls = tokio::select! {
            done = handshake => match done {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    self.guard.pool.stats.count(DropReason::HandshakeTimeout);
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return;
                }
            },
            _ = slot.evict.notified() => {
                tracing::debug!(peer = %self.peer, "closed during its TLS handshake to make room for a new connection");
                return;
            }
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        slot.handshake_done();
        self.serve_http(tls).await;
    }

    pub(super) async fn serve_http<I>(mut self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let slot = self.guard.slot.clone();
        let limits = self.guard.pool.limits;
        let stats = self.guard.pool.stats.clone();
        let app = TowerToHyperService::new(self.app.clone());
        let tracked = slot.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            tracked.set(Phase::Busy);
            let busy = BusyGuard(tracked.clone());
            let response = app.call(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| TrackedBody { body, _busy: busy }))
            }
        });
        // No hyper timer: hyper's own header-read timeout also runs while a kept-alive
        // connection waits for its next request, which would close Prometheus' connection
        // between scrapes at the header timeout. The phases here time head and idle apart.
        let conn = http1::Builder::new().serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut tick = tokio::time::interval(limits.tick());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                done = conn.as_mut() => {
                    if let Err(e) = done {
                        tracing::debug!(peer = %self.peer, error = %e, "HTTP connection ended");
                    }
                    return;
                }
                _ = slot.evict.notified() => {
                    tracing::debug!(peer = %self.peer, "closed to make room for a new connection");
                    return;
                }
                _ = tick.tick() => {
                    if let Some(reason) = slot.expired(Instant::now(), &limits) {
                        stats.count(reason);
                        tracing::debug!(peer = %self.peer, reason = reason.as_str(), "HTTP connection closed");
                        return;
                    }
                    if stopping && slot.phase().0 != Phase::Busy {
                        return;
                    }
                }
                _ = self.stop.wait_for(|stop| *stop), if !stopping => {
                    // Requests in progress finish; a connection between requests or still
                    // sending one closes now, so shutdown does not wait on a client.
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                    if slot.phase().0 != Phase::Busy {
                        return;
                    }
                }
            }
        }
    }
}

/// Marks the connection idle when the response body is done (sent or dropped).
pub(super) struct BusyGuard(pub(super) Arc<Slot>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.set(Phase::Idle);
    }
}

/// A response body that holds its connection busy until hyper drops it.
pub(super) struct TrackedBody {
    pub(super) body: Body,
    pub(super) _busy: BusyGuard,
}

impl hyper::body::Body for TrackedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket (under TLS, if any), telling its slot when it is first read and when bytes
/// arrive.
pub(super) struct TrackedIo<I> {
    pub(super) inner: I,
    pub(super) slot: Arc<Slot>,
}

impl<I: AsyncRead + Unpin> AsyncRead for TrackedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.slot.polled.store(true, Ordering::Relaxed);
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.slot.on_read(buf.filled().len() - before);
        }
        read
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TrackedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.slot.on_write(written.is_pending());
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.slot.on_write(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
