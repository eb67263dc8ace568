//! Socket.IO (protocol v5 for socket.io 3.x/4.x servers, v4 for 2.x): packets, binary
//! attachments and reassembly, reserved event names.

pub(crate) mod client;
mod decoder;
mod event;
mod packet;

pub use decoder::Decoder;
pub use event::{ack_args, event_data, split_event};
pub(crate) use packet::LazyData;
pub use packet::{
    check_placeholders, is_reserved_event, placeholder, placeholder_num, placeholder_nums, Packet,
    PacketType, RESERVED_EVENTS,
};
