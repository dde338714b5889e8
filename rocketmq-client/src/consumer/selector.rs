//! [`MessageSelector`]: which messages of a topic a consumer wants, by tag
//! expression or SQL92 condition.

use rocketmq_model::SubscriptionData;
use rocketmq_model::body::{ExpressionType, SUB_ALL};

use crate::error::Result;

/// Puts `topic`'s selector into a builder's list, replacing an earlier one
/// for the same topic (the later call wins, as Java's `subscribe`).
pub(crate) fn put_selector(
    list: &mut Vec<(String, MessageSelector)>,
    topic: String,
    selector: MessageSelector,
) {
    list.retain(|(t, _)| *t != topic);
    list.push((topic, selector));
}

/// A subscription filter: a tag expression (`*`, `"A"`, `"A || B"`) or an
/// SQL92 condition over message properties (brokers need
/// `enablePropertyFilter=true` for it).
///
/// ```
/// use rocketmq_client::consumer::MessageSelector;
///
/// let all = MessageSelector::all();
/// let some = MessageSelector::tag("TagA || TagB");
/// let sql = MessageSelector::sql92("a > 5 AND b = 'x'");
/// assert_eq!(some.expression(), "TagA || TagB");
/// assert_eq!(all.expression(), "*");
/// assert!(sql.is_sql92());
/// // A plain string is a tag expression.
/// let from_str: MessageSelector = "TagA".into();
/// assert_eq!(from_str, MessageSelector::tag("TagA"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSelector {
    kind: ExpressionType,
    expression: String,
}

impl MessageSelector {
    /// Every message of the topic (`*`).
    pub fn all() -> Self {
        Self::tag(SUB_ALL)
    }

    /// A tag expression: `*`, one tag, or tags joined by `||`.
    pub fn tag(expression: impl Into<String>) -> Self {
        MessageSelector {
            kind: ExpressionType::Tag,
            expression: expression.into(),
        }
    }

    /// An SQL92 condition over message properties.
    pub fn sql92(expression: impl Into<String>) -> Self {
        MessageSelector {
            kind: ExpressionType::Sql92,
            expression: expression.into(),
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether this is an SQL92 condition.
    pub fn is_sql92(&self) -> bool {
        self.kind == ExpressionType::Sql92
    }

    /// The wire subscription of `topic` (tags split on `||` and hashed as
    /// Java does); an error for an empty SQL92 condition or a tag
    /// expression without tags.
    pub fn subscription(&self, topic: &str) -> Result<SubscriptionData> {
        Ok(SubscriptionData::from_expression(
            topic,
            &self.expression,
            self.kind,
        )?)
    }
}

impl Default for MessageSelector {
    fn default() -> Self {
        Self::all()
    }
}

impl From<&str> for MessageSelector {
    fn from(expression: &str) -> Self {
        Self::tag(expression)
    }
}

impl From<String> for MessageSelector {
    fn from(expression: String) -> Self {
        Self::tag(expression)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_expressions_become_java_subscriptions() {
        let sub = MessageSelector::tag("A || B").subscription("T").unwrap();
        assert_eq!(sub.topic, "T");
        assert_eq!(sub.tags_set.len(), 2);
        assert!(sub.tags_set.contains("A") && sub.tags_set.contains("B"));
        assert_eq!(sub.code_set.len(), 2);
        assert!(
            MessageSelector::all()
                .subscription("T")
                .unwrap()
                .is_sub_all()
        );
        assert!(
            MessageSelector::tag("")
                .subscription("T")
                .unwrap()
                .is_sub_all()
        );
        assert!(MessageSelector::tag("||").subscription("T").is_err());
    }

    #[test]
    fn sql92_keeps_the_expression() {
        let sub = MessageSelector::sql92("a > 1").subscription("T").unwrap();
        assert_eq!(sub.expression_type, ExpressionType::Sql92);
        assert_eq!(sub.sub_string, "a > 1");
        assert!(sub.tags_set.is_empty());
        assert!(MessageSelector::sql92("").subscription("T").is_err());
    }
}
