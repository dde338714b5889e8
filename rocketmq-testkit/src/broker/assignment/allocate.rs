//! The allocations a Java broker makes for QUERY_ASSIGNMENT: its two
//! strategies (`AllocateMessageQueueAveragely`, `...AveragelyByCircle`,
//! written here again: the testkit does not depend on the kernel) and
//! `QueryAssignmentProcessor.allocate4Pop`. Every function takes the queues
//! and client ids sorted, as the processor sorts them before it allocates.

use rocketmq_model::MessageQueue;
use rocketmq_model::body::MessageRequestMode;

/// What Java's allocation throws (an `IllegalArgumentException`), which the
/// broker answers with no assignment at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unallocatable(pub(super) &'static str);

/// The strategies a Java broker knows, by the names clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strategy {
    /// `AVG`: consecutive runs of queues, the first members one more each.
    Averagely,
    /// `AVG_BY_CIRCLE`: the queue at the member's index, and every
    /// `members`-th queue after it.
    ByCircle,
}

impl Strategy {
    /// The strategy a client names; Java's broker knows no other.
    pub(super) fn named(name: &str) -> Option<Self> {
        match name {
            "AVG" => Some(Strategy::Averagely),
            "AVG_BY_CIRCLE" => Some(Strategy::ByCircle),
            _ => None,
        }
    }

    /// The queues of `client`, by Java's strategy of that name; none for a
    /// client that is no member.
    pub(super) fn allocate(
        self,
        client: &str,
        queues: &[MessageQueue],
        clients: &[String],
    ) -> Result<Vec<MessageQueue>, Unallocatable> {
        // Java's `AbstractAllocateMessageQueueStrategy.check`.
        if client.is_empty() {
            return Err(Unallocatable("currentCID is empty"));
        }
        check_inputs(queues, clients)?;
        let Some(index) = clients.iter().position(|c| c == client) else {
            return Ok(Vec::new());
        };
        let pick = |i: usize| queues[i].clone();
        let (count, members) = (queues.len(), clients.len());
        Ok(match self {
            Strategy::Averagely => averagely(index, count, members).map(pick).collect(),
            Strategy::ByCircle => by_circle(index, count, members).map(pick).collect(),
        })
    }
}

fn check_inputs(queues: &[MessageQueue], clients: &[String]) -> Result<(), Unallocatable> {
    if queues.is_empty() {
        return Err(Unallocatable("mqAll is null or mqAll empty"));
    }
    if clients.is_empty() {
        return Err(Unallocatable("cidAll is null or cidAll empty"));
    }
    Ok(())
}

/// The indexes Java's averagely allocation gives member `index` of
/// `members` among `queues` queues.
fn averagely(index: usize, queues: usize, members: usize) -> impl Iterator<Item = usize> {
    let rest = queues % members;
    let takes_one_more = rest > 0 && index < rest;
    let size = if queues <= members {
        1
    } else if takes_one_more {
        queues / members + 1
    } else {
        queues / members
    };
    let start = if takes_one_more {
        index * size
    } else {
        index * size + rest
    };
    (start..queues).take(size)
}

/// The indexes Java's allocation by circle gives member `index`.
fn by_circle(index: usize, queues: usize, members: usize) -> impl Iterator<Item = usize> {
    (index..queues).step_by(members)
}

/// The queues of `client` in `mode`: the strategy's in pull mode; in pop
/// mode, Java's `allocate4Pop` (a queue may then appear twice: the caller
/// keeps each once, as Java's set does).
pub(super) fn allocate(
    strategy: Strategy,
    mode: MessageRequestMode,
    pop_share_queue_num: i32,
    client: &str,
    queues: &[MessageQueue],
    clients: &[String],
) -> Result<Vec<MessageQueue>, Unallocatable> {
    match mode {
        MessageRequestMode::Pull => strategy.allocate(client, queues, clients),
        MessageRequestMode::Pop => {
            allocate_for_pop(strategy, pop_share_queue_num, client, queues, clients)
        }
    }
}

/// Java's `allocate4Pop`: with no sharing (or sharing with every other
/// member) every member pops every queue, so each queue becomes its
/// broker's queue -1; else a member also takes the queues of the
/// `share` members after it in the sorted list; with more members than
/// queues, the queue at its index modulo the queue count.
fn allocate_for_pop(
    strategy: Strategy,
    share: i32,
    client: &str,
    queues: &[MessageQueue],
    clients: &[String],
) -> Result<Vec<MessageQueue>, Unallocatable> {
    let others = i64::try_from(clients.len()).unwrap_or(i64::MAX) - 1;
    if share <= 0 || i64::from(share) >= others {
        return Ok(queues
            .iter()
            .map(|q| MessageQueue::new(q.topic.clone(), q.broker_name.clone(), -1))
            .collect());
    }
    if clients.len() > queues.len() {
        return by_index_modulo(client, queues, clients);
    }
    let mut result = strategy.allocate(client, queues, clients)?;
    if let Some(mut index) = clients.iter().position(|c| c == client) {
        for _ in 0..share {
            index = (index + 1) % clients.len();
            result.extend(strategy.allocate(&clients[index], queues, clients)?);
        }
    }
    Ok(result)
}

/// The processor's own `allocate`, which makes sure every member gets a
/// queue when there are more members than queues.
fn by_index_modulo(
    client: &str,
    queues: &[MessageQueue],
    clients: &[String],
) -> Result<Vec<MessageQueue>, Unallocatable> {
    if client.chars().all(char::is_whitespace) {
        return Err(Unallocatable("currentCID is empty"));
    }
    check_inputs(queues, clients)?;
    Ok(clients
        .iter()
        .position(|c| c == client)
        .map(|index| queues[index % queues.len()].clone())
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|i| MessageQueue::new("T", "b", i)).collect()
    }

    fn clients(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    fn ids(queues: &[MessageQueue]) -> Vec<i32> {
        queues.iter().map(|q| q.queue_id).collect()
    }

    #[test]
    fn averagely_as_java() {
        let all = queues(8);
        let members = clients(3);
        let got: Vec<Vec<i32>> = (members.iter())
            .map(|c| ids(&Strategy::Averagely.allocate(c, &all, &members).unwrap()))
            .collect();
        assert_eq!(got, [vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        // More members than queues: one each for the first, none after.
        let members = clients(5);
        let got: Vec<Vec<i32>> = (members.iter())
            .map(|c| {
                ids(&Strategy::Averagely
                    .allocate(c, &queues(3), &members)
                    .unwrap())
            })
            .collect();
        assert_eq!(got, [vec![0], vec![1], vec![2], vec![], vec![]]);
    }

    #[test]
    fn by_circle_as_java() {
        let all = queues(8);
        let members = clients(3);
        let got: Vec<Vec<i32>> = (members.iter())
            .map(|c| ids(&Strategy::ByCircle.allocate(c, &all, &members).unwrap()))
            .collect();
        assert_eq!(got, [vec![0, 3, 6], vec![1, 4, 7], vec![2, 5]]);
    }

    #[test]
    fn java_checks_its_inputs() {
        let members = clients(2);
        let strategy = Strategy::Averagely;
        assert!(strategy.allocate("", &queues(2), &members).is_err());
        assert!(strategy.allocate("c0", &[], &members).is_err());
        assert!(strategy.allocate("c0", &queues(2), &[]).is_err());
        assert_eq!(
            strategy.allocate("stranger", &queues(2), &members),
            Ok(vec![])
        );
        assert!(by_index_modulo(" ", &queues(2), &members).is_err());
        assert_eq!(Strategy::named("AVG"), Some(Strategy::Averagely));
        assert_eq!(Strategy::named("AVG_BY_CIRCLE"), Some(Strategy::ByCircle));
        assert_eq!(Strategy::named("CONSISTENT_HASH"), None);
    }

    #[test]
    fn pop_shares_with_the_following_members() {
        let all = queues(8);
        let members = clients(3);
        let pop = |client: &str, share| {
            ids(&allocate_for_pop(Strategy::Averagely, share, client, &all, &members).unwrap())
        };
        assert_eq!(pop("c0", 1), [0, 1, 2, 3, 4, 5]);
        assert_eq!(pop("c2", 1), [6, 7, 0, 1, 2], "wraps around");
        assert_eq!(pop("c1", 0), [-1; 8], "every queue");
        assert_eq!(pop("c1", 2), [-1; 8], "shares with every other member");
        // More members than queues: the index modulo the queue count.
        let members = clients(5);
        let got: Vec<Vec<i32>> = (members.iter())
            .map(|c| {
                ids(&allocate_for_pop(Strategy::ByCircle, 1, c, &queues(2), &members).unwrap())
            })
            .collect();
        assert_eq!(got, [vec![0], vec![1], vec![0], vec![1], vec![0]]);
    }

    /// Java's `QueryAssignmentProcessorTest.testAllocate4Pop`: every size of
    /// queues, members and sharing up to 16.
    #[test]
    fn pop_sizes_as_javas_test() {
        for strategy in [Strategy::Averagely, Strategy::ByCircle] {
            for mq_size in 1..=16 {
                let all = queues(mq_size);
                for cid_size in 1..=16_usize {
                    let members = clients(cid_size);
                    // Java's test asks for the last member; every one holds.
                    for (client, share) in members.iter().flat_map(|c| (0..16).map(move |s| (c, s)))
                    {
                        let got = allocate_for_pop(strategy, share, client, &all, &members)
                            .unwrap()
                            .len();
                        assert!(
                            pop_size_as_java(share, all.len(), cid_size, got),
                            "{strategy:?} queues {mq_size} members {cid_size} {client} share {share}: {got}"
                        );
                    }
                }
            }
        }
    }

    /// Java's `checkAllocateResult`, for the two strategies.
    fn pop_size_as_java(share: i32, queues: usize, members: usize, got: usize) -> bool {
        if got > queues || got == 0 {
            return false;
        }
        let share_all = share <= 0 || usize::try_from(share).unwrap() + 1 >= members;
        if share_all {
            return got == queues;
        }
        if queues < members {
            return got == 1;
        }
        let times = usize::try_from(share).unwrap() + 1;
        let avg = queues / members;
        if queues.is_multiple_of(members) {
            got == avg * times
        } else {
            (avg * times..=(avg + 1) * times).contains(&got)
        }
    }
}
