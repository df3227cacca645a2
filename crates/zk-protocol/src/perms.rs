//! ACL permission bits (`ZooDefs.Perms`).

/// May read data and list children.
pub const READ: i32 = 1;
/// May set data.
pub const WRITE: i32 = 1 << 1;
/// May create children.
pub const CREATE: i32 = 1 << 2;
/// May delete children.
pub const DELETE: i32 = 1 << 3;
/// May set the ACL.
pub const ADMIN: i32 = 1 << 4;
/// Every permission.
pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
