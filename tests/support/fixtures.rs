//! Values shared by the behaviour matrices: an object with two binary attachments nested in
//! it, for the "binary both ways" cases.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A message with two attachments inside nested objects.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Files {
    pub name: String,
    pub parts: Vec<Part>,
}

/// One binary part.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Part {
    pub label: String,
    pub data: Bytes,
}

/// The fixture: 4 bytes and 3000 bytes.
pub fn files() -> Files {
    Files {
        name: "two attachments".into(),
        parts: vec![
            Part {
                label: "a".into(),
                data: Bytes::from_static(&[0, 1, 2, 255]),
            },
            Part {
                label: "b".into(),
                data: Bytes::from(vec![7u8; 3000]),
            },
        ],
    }
}
