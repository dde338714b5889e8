//! Name-server route query header (PROTOCOL.md §3.2).

command_header! {
    /// GET_ROUTEINFO_BY_TOPIC (105) request header.
    pub struct GetRouteInfoRequestHeader {
        /// The topic whose route is wanted.
        req topic: String = "topic";
        /// Ask for standard JSON (quoted map keys); honoured by name servers
        /// ≥ 4.9.4, ignored by older ones (§7.1).
        opt accept_standard_json_only: bool = "acceptStandardJsonOnly";
    }
}

impl GetRouteInfoRequestHeader {
    /// A route query for `topic` that asks for standard JSON.
    pub fn new(topic: impl Into<String>) -> Self {
        GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: Some(true),
        }
    }
}
