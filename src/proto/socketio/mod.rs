//! Socket.IO (protocol v5 for socket.io 3.x/4.x servers, v4 for 2.x): packets, binary
//! attachments and reassembly, reserved event names.

mod decoder;
mod packet;

pub use decoder::Decoder;
pub use packet::{
    check_placeholders, is_reserved_event, placeholder, placeholder_num, placeholder_nums, Packet,
    PacketType, RESERVED_EVENTS,
};
