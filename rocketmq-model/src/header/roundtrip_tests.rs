//! Every header survives a round trip through `extFields`, and encodes to the
//! same fields whether written at once or kept typed.

use proptest::prelude::*;

use super::*;

fn round_trips<H>(header: &H) -> std::result::Result<(), TestCaseError>
where
    H: CommandHeader + DynHeader + Clone + PartialEq + std::fmt::Debug,
{
    let fields = header.to_ext_fields();
    // A header writes each key once: the codecs write a typed header's
    // fields as they come, where a map would keep only the last of two.
    let mut keys = KeyList::default();
    header.write_fields(&mut FieldWriter::to_sink(&mut keys));
    prop_assert_eq!(
        keys.0.len(),
        fields.len(),
        "a key written twice: {:?}",
        keys.0
    );
    let typed = ExtFields::from_header(header.clone());
    prop_assert_eq!(typed.header().map(DynHeader::name), Some(H::NAME));
    // The same fields, in the order the header writes them.
    prop_assert_eq!(
        typed.iter().collect::<Vec<_>>(),
        fields.iter().collect::<Vec<_>>()
    );
    let back = H::from_ext_fields(&fields).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, header);
    Ok(())
}

/// The keys a header writes, in order.
#[derive(Default)]
struct KeyList(Vec<String>);

impl FieldSink for KeyList {
    fn put_str(&mut self, key: &str, _value: &str) {
        self.0.push(key.to_owned());
    }

    fn put_int(&mut self, key: &str, _value: i64) {
        self.0.push(key.to_owned());
    }
}

macro_rules! round_trip_tests {
    ($($test:ident: $ty:ty,)*) => {
        proptest! {
            $(
                #[test]
                fn $test(header in any::<$ty>()) {
                    round_trips(&header)?;
                }
            )*
        }
    };
}

round_trip_tests! {
    get_route_info: GetRouteInfoRequestHeader,
    send_v1: SendMessageRequestHeader,
    send_v2: SendMessageRequestHeaderV2,
    send_response: SendMessageResponseHeader,
    pull_request: PullMessageRequestHeader,
    pull_response: PullMessageResponseHeader,
    query_consumer_offset: QueryConsumerOffsetRequestHeader,
    query_consumer_offset_response: QueryConsumerOffsetResponseHeader,
    update_consumer_offset: UpdateConsumerOffsetRequestHeader,
    get_max_offset: GetMaxOffsetRequestHeader,
    get_max_offset_response: GetMaxOffsetResponseHeader,
    get_min_offset: GetMinOffsetRequestHeader,
    get_min_offset_response: GetMinOffsetResponseHeader,
    search_offset: SearchOffsetRequestHeader,
    search_offset_response: SearchOffsetResponseHeader,
    earliest_msg_storetime: GetEarliestMsgStoretimeRequestHeader,
    earliest_msg_storetime_response: GetEarliestMsgStoretimeResponseHeader,
    unregister_client: UnregisterClientRequestHeader,
    consumer_list_by_group: GetConsumerListByGroupRequestHeader,
    notify_consumer_ids_changed: NotifyConsumerIdsChangedRequestHeader,
    reset_offset: ResetOffsetRequestHeader,
    consumer_status: GetConsumerStatusRequestHeader,
    consumer_running_info: GetConsumerRunningInfoRequestHeader,
    consume_message_directly: ConsumeMessageDirectlyResultRequestHeader,
    send_msg_back: ConsumerSendMsgBackRequestHeader,
    end_transaction: EndTransactionRequestHeader,
    check_transaction_state: CheckTransactionStateRequestHeader,
    view_message: ViewMessageRequestHeader,
    query_message: QueryMessageRequestHeader,
    query_message_response: QueryMessageResponseHeader,
    create_topic: CreateTopicRequestHeader,
    reply_message: ReplyMessageRequestHeader,
    recall_message: RecallMessageRequestHeader,
    recall_message_response: RecallMessageResponseHeader,
    pop_message: PopMessageRequestHeader,
    pop_message_response: PopMessageResponseHeader,
    ack_message: AckMessageRequestHeader,
    change_invisible_time: ChangeInvisibleTimeRequestHeader,
    change_invisible_time_response: ChangeInvisibleTimeResponseHeader,
}

proptest! {
    /// Both send key sets carry the same header.
    #[test]
    fn send_v1_and_v2_agree(header in any::<SendMessageRequestHeader>()) {
        let v2 = SendMessageRequestHeaderV2::from(header.clone());
        let back = SendMessageRequestHeaderV2::from_ext_fields(&v2.to_ext_fields()).unwrap();
        prop_assert_eq!(SendMessageRequestHeader::from(back), header.clone());
        prop_assert_eq!(header.to_ext_fields().len(), v2.to_ext_fields().len());
    }

    /// Decoding arbitrary maps never panics.
    #[test]
    fn decoding_arbitrary_fields_never_panics(
        fields in prop::collection::hash_map("[a-zA-Z_]{1,12}", "\\PC{0,12}", 0..12),
    ) {
        let fields: ExtFields = fields.into_iter().collect();
        let _ = PullMessageRequestHeader::from_ext_fields(&fields);
        let _ = SendMessageRequestHeaderV2::from_ext_fields(&fields);
        let _ = EndTransactionRequestHeader::from_ext_fields(&fields);
        let _ = SearchOffsetRequestHeader::from_ext_fields(&fields);
        let _ = PopMessageResponseHeader::from_ext_fields(&fields);
    }
}
