//! How domain state looks as DynamoDB attributes (what `serde_dynamo` writes).

use std::collections::VecDeque;

use domain::detection::RecentIds;

#[test]
fn recent_ids_are_stored_as_a_plain_list_of_strings() {
    let ids = ["", "a", "abcdefghX", "0a1b2c3d-e5f6", "é", "\0"];
    let recent: RecentIds = ids.iter().copied().collect();
    let dynamo: serde_dynamo::AttributeValue =
        serde_dynamo::to_attribute_value(&recent).expect("serialises");
    let plain: serde_dynamo::AttributeValue =
        serde_dynamo::to_attribute_value(ids.iter().collect::<VecDeque<_>>()).expect("serialises");
    assert_eq!(dynamo, plain);
    let back: RecentIds = serde_dynamo::from_attribute_value(dynamo).expect("deserialises");
    assert_eq!(back, recent);
}
