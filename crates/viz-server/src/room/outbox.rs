//! What the room's core asks of the native transport, in order: datagrams to send and
//! WebSocket paths to mark authenticated or close. The core only appends (no await, no
//! socket); the shell in [`super::run_with_local`] carries it out after each event, and
//! tests read it instead. The buffers keep their capacity, so a running room does not
//! allocate per datagram.

use std::ops::Range;

use crate::listener::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetOp {
    /// Send the bytes at this range of [`Outbox::bytes`].
    Send(Path, Range<usize>),
    /// A session on this path completed its handshake (a WebSocket stays open now).
    Authenticated(Path),
    /// The session on this path is over (a WebSocket closes after what is queued).
    Close(Path),
}

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    bytes: Vec<u8>,
    ops: Vec<NetOp>,
}

impl Outbox {
    pub(crate) fn send(&mut self, path: Path, datagram: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(datagram);
        self.ops.push(NetOp::Send(path, start..self.bytes.len()));
    }

    pub(crate) fn push(&mut self, op: NetOp) {
        self.ops.push(op);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Operations queued.
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// Every queued operation, oldest first, with the bytes a `Send` carries.
    #[cfg(test)]
    pub(crate) fn ops(&self) -> impl Iterator<Item = (&NetOp, &[u8])> {
        self.slice(0..self.ops.len())
    }

    /// The operations at `range` of the queue, with their bytes.
    pub(crate) fn slice(&self, range: Range<usize>) -> impl Iterator<Item = (&NetOp, &[u8])> {
        self.ops[range].iter().map(|op| match op {
            NetOp::Send(_, r) => (op, &self.bytes[r.clone()]),
            _ => (op, &[][..]),
        })
    }

    /// Forgets what was carried out, keeping the buffers' capacity.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.ops.clear();
    }
}
