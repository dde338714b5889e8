//! The soak's summary: a readable account, then one JSON line with the
//! same figures.

use serde_json::{Value, json};

use crate::outcome::Outcome;
use crate::scenario::Plan;

/// Prints the summary and the JSON line to stdout.
pub(crate) fn print(plan: &Plan, target: &str, outcome: &Outcome) {
    let v = &outcome.verdict;
    let d = &v.duplicates;
    let send_secs = outcome.send_time.as_secs_f64().max(f64::EPSILON);
    println!(
        "soak against {target}: {} messages, {} producers, {} {} consumers, {} broker restarts",
        plan.messages,
        plan.producers,
        plan.consumers,
        plan.mode.name(),
        plan.restarts
    );
    println!(
        "  sends acknowledged   {:>9}  ({} failed; {:.0} msg/s)",
        v.acked,
        v.send_failures,
        v.acked as f64 / send_secs
    );
    println!(
        "  consumed (distinct)  {:>9}  ({} deliveries)",
        v.consumed, v.deliveries
    );
    println!("  LOST                 {:>9}  {:?}", v.lost, v.lost_sample);
    println!(
        "    of which no broker can deliver {} (the broker's loss; the client's: {})",
        outcome.lost_by_broker,
        outcome.client_lost()
    );
    println!(
        "  duplicates           {:>9}  ({} redelivered, {} stored twice, {} unexplained)",
        d.total, d.redelivered, d.stored_twice, d.unexplained
    );
    if outcome.mode.pops() {
        println!(
            "    popped twice by the broker {} (the broker's; the same queue offset in two pops)",
            d.popped_twice
        );
        for sample in &d.popped_twice_sample {
            println!("      {sample}");
        }
    }
    for (broker, n) in &d.by_broker {
        println!("    {n:>7} from the queues of {broker}");
    }
    for (fault, n) in &d.near_fault {
        println!("    {n:>7} after {fault}");
    }
    println!("  consumed, send failed {:>8}", v.consumed_unacked);
    if outcome.mode.pops() {
        println!(
            "  first delivered revived {:>6}  (popped, the pop's answer lost to a leave or a broker stop)",
            v.first_revived
        );
    }
    if let Some(p) = &outcome.pop {
        println!(
            "  pop: {} receives ({} empty, {} failed), {} messages; {} batch acks, {} single acks, {} changes",
            p.receives,
            p.empty_receives,
            p.receive_failures,
            p.received,
            p.batch_acks,
            p.single_acks,
            p.changes
        );
        println!(
            "    left unacknowledged: {} acks failed, {} changes failed, {} dropped by leaving members; {} never came back",
            p.ack_failures, p.change_failures, p.dropped, p.released_not_returned
        );
    }
    if let Some(p) = &outcome.push_pop {
        println!(
            "  push pop: released {} on the kernel's warnings ({} naming unknown handles), {} that came late, {} left unsettled by {} leaving members; {} never came back",
            p.kernel_releases,
            p.unknown_handles,
            p.late,
            p.unsettled_released,
            p.unsettled_leaves,
            p.released_not_returned
        );
        println!(
            "    consumed without a receipt handle (pulled) {}",
            p.without_handle
        );
    }
    println!(
        "  clean-restart redeliveries {:>3}",
        outcome.restart_redeliveries
    );
    println!(
        "  peak VmRSS {} KiB, VmHWM {} KiB",
        outcome.peak_rss_kib, outcome.hwm_kib
    );
    println!("  tasks alive after shutdown {}", outcome.tasks_alive);
    println!(
        "  run time {:.1}s (sending {:.1}s)",
        outcome.run_time.as_secs_f64(),
        send_secs
    );
    for (broker, took) in &outcome.send_recoveries {
        match took {
            Some(took) => println!(
                "  first send to {broker} acked {:.2}s after its restart",
                took.as_secs_f64()
            ),
            None => println!("  no send to {broker} acked after its restart"),
        }
    }
    println!("  faults:");
    for fault in &outcome.faults {
        println!("    {:>8.2}s {}", fault.at.as_secs_f64(), fault.what);
    }
    for what in outcome
        .hangs
        .iter()
        .chain(&outcome.unclean_shutdowns)
        .chain(&outcome.notes)
    {
        println!("  note: {what}");
    }
    if outcome.timed_out {
        println!("  TIMED OUT before everything was consumed");
    }
    println!("  {}", if outcome.passed() { "PASS" } else { "FAIL" });
    println!("{}", json_line(plan, target, outcome));
}

/// The figures as one JSON object.
pub(crate) fn json_line(plan: &Plan, target: &str, outcome: &Outcome) -> Value {
    let v = &outcome.verdict;
    let d = &v.duplicates;
    json!({
        "soak": target,
        "messages": plan.messages,
        "producers": plan.producers,
        "auto_batch": plan.auto_batch,
        "consumers": plan.consumers,
        "consumer_mode": plan.mode.name(),
        "pop": outcome.pop.map(|p| json!({
            "receives": p.receives,
            "empty_receives": p.empty_receives,
            "receive_failures": p.receive_failures,
            "received": p.received,
            "batch_acks": p.batch_acks,
            "single_acks": p.single_acks,
            "changes": p.changes,
            "ack_failures": p.ack_failures,
            "change_failures": p.change_failures,
            "dropped": p.dropped,
            "released_not_returned": p.released_not_returned,
        })),
        "push_pop": outcome.push_pop.map(|p| json!({
            "kernel_releases": p.kernel_releases,
            "unknown_handles": p.unknown_handles,
            "late": p.late,
            "unsettled_leaves": p.unsettled_leaves,
            "unsettled_released": p.unsettled_released,
            "without_handle": p.without_handle,
            "released_not_returned": p.released_not_returned,
        })),
        "restarts": plan.restarts,
        "acked": v.acked,
        "send_failures": v.send_failures,
        "consumed": v.consumed,
        "deliveries": v.deliveries,
        "lost": v.lost,
        "lost_by_broker": outcome.lost_by_broker,
        "lost_by_client": outcome.client_lost(),
        "duplicates": d.total,
        "duplicates_redelivered": d.redelivered,
        "duplicates_stored_twice": d.stored_twice,
        "duplicates_popped_twice": d.popped_twice,
        "duplicates_unexplained": d.unexplained,
        "duplicates_near_fault": d.near_fault,
        "duplicates_by_broker": d.by_broker,
        "consumed_unacked": v.consumed_unacked,
        "first_revived": v.first_revived,
        "restart_redeliveries": outcome.restart_redeliveries,
        "unclean_shutdowns": outcome.unclean_shutdowns.len(),
        "hangs": outcome.hangs.len(),
        "peak_rss_kib": outcome.peak_rss_kib,
        "vm_hwm_kib": outcome.hwm_kib,
        "tasks_alive_after_shutdown": outcome.tasks_alive,
        "send_seconds": outcome.send_time.as_secs_f64(),
        "run_seconds": outcome.run_time.as_secs_f64(),
        "timed_out": outcome.timed_out,
        "aborted": outcome.aborted,
        "send_recovery_seconds": outcome.send_recoveries.iter()
            .map(|(broker, took)| json!({"broker": broker, "seconds": took.map(|t| t.as_secs_f64())}))
            .collect::<Vec<_>>(),
        "faults": outcome.faults.iter()
            .map(|f| json!({"at": f.at.as_secs_f64(), "what": f.what}))
            .collect::<Vec<_>>(),
        "passed": outcome.passed(),
    })
}
