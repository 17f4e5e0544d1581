//! XENBUS's portable core (`no_std` + `alloc`): the xenstore client and the xenbus
//! device helpers every frontend needs.
#![no_std]
#![deny(missing_docs, unsafe_code)]
