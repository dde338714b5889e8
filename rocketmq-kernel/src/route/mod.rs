//! Route tables (PROTOCOL.md §8.3–8.4): topic → route, publish queues,
//! subscribe queues, broker addresses, and the broker each queue is pulled
//! from next; [`Routes`] fills the table from the nameservers, one request per
//! topic at a time.

mod lookup;
mod publish;
mod table;

pub use lookup::Routes;
pub use publish::PublishInfo;
pub use table::RouteTable;
