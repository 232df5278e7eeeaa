//! Attacks on a real `viz serve` on loopback, each bounded (hundreds of packets or
//! connections, seconds not minutes), asserting what the server does about them.
//! Issue 12 lists the findings these reproduce.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod flood;
mod http;
mod memory;
mod native;
mod password;
mod recording;
mod rtp;
mod tcp;
mod web;
