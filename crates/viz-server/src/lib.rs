//! # viz-server
//!
//! The host side of Viz: one port number serving UDP and WebSocket ([`listener`]), and
//! the [`host`] runtime that drives `viz-proto`'s endpoint and connects the host's own
//! audio engine to the call in-process.

pub mod batch_send;
pub mod host;
pub mod kernel_udp;
pub mod limits;
pub mod listener;
pub mod room;
pub mod send_pool;
pub mod web;
