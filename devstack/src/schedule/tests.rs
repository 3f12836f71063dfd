//! Unit tests of schedule events, periods and runners.

use super::*;

fn rate(text: &str) -> Result<Duration> {
    match parse_expression(text)? {
        ScheduleExpression::Rate(d) => Ok(d),
        other => bail!("not a rate: {other:?}"),
    }
}

#[test]
fn rate_expressions_parse_like_eventbridge() {
    assert_eq!(rate("rate(1 minute)").unwrap(), Duration::from_secs(60));
    assert_eq!(rate("rate(5 minutes)").unwrap(), Duration::from_secs(300));
    assert_eq!(
        rate(" rate( 2 hours ) ").unwrap(),
        Duration::from_secs(7200)
    );
    assert_eq!(rate("rate(1 hour)").unwrap(), Duration::from_secs(3600));
    assert_eq!(rate("rate(1 day)").unwrap(), Duration::from_secs(86_400));
    assert_eq!(rate("rate(3 days)").unwrap(), Duration::from_secs(259_200));
    for bad in [
        "rate(1 minutes)",
        "rate(5 minute)",
        "rate(0 minutes)",
        "rate(-1 minutes)",
        "rate(1.5 minutes)",
        "rate(10 seconds)",
        "rate(5)",
        "rate(5 minutes",
        "rate()",
        "every 5 minutes",
        "at(2030-01-01T00:00:00)",
    ] {
        assert!(parse_expression(bad).is_err(), "{bad} should be refused");
    }
    let err = format!("{:#}", parse_expression("rate(5 minute)").unwrap_err());
    assert!(err.contains("plural"), "{err}");
}

#[test]
fn cron_needs_six_fields_and_an_interval() {
    let cron = parse_expression("cron(0/5 * * * ? *)").unwrap();
    assert_eq!(
        cron,
        ScheduleExpression::Cron("cron(0/5 * * * ? *)".to_string())
    );
    assert!(parse_expression("cron(0 * * * *)").is_err());
    let event = ScheduleEvent::from_event(
        "Nightly",
        ScheduleKind::Rule,
        &json!({"Schedule": "cron(0 2 * * ? *)"}),
    )
    .unwrap();
    let err = format!("{:#}", event.period(None).unwrap_err());
    assert!(
        err.contains("cron") && err.contains("schedule interval"),
        "{err}"
    );
    assert_eq!(
        event.period(Some(Duration::from_secs(2))).unwrap(),
        Duration::from_secs(2)
    );
}

#[test]
fn intervals_parse_with_units() {
    assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_interval("2s").unwrap(), Duration::from_secs(2));
    assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
    assert_eq!(parse_interval("1.5s").unwrap(), Duration::from_millis(1500));
    assert_eq!(parse_interval("1m").unwrap(), Duration::from_secs(60));
    assert_eq!(parse_interval("1h").unwrap(), Duration::from_secs(3600));
    for bad in ["", "0s", "-1s", "5 weeks", "ms", "1d", "0.1ms"] {
        assert!(parse_interval(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn payload_is_the_scheduled_event_of_the_rule_or_schedule() {
    let time = chrono::DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let rule = ScheduleEvent::from_event(
        "Sweep",
        ScheduleKind::Rule,
        &json!({"Schedule": "rate(1 minute)"}),
    )
    .unwrap();
    let arn = schedule_arn(&rule, "SweepFunction", "vitals-local", "123456789012");
    assert_eq!(
        arn,
        "arn:aws:events:us-east-1:123456789012:rule/vitals-local-SweepFunctionSweep"
    );
    let mut event = scheduled_event(rule.kind, "123456789012", &arn, time);
    assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
    event.as_object_mut().unwrap().remove("id");
    assert_eq!(
        event,
        json!({
            "version": "0",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "123456789012",
            "time": "2030-01-02T03:04:05Z",
            "region": "us-east-1",
            "resources": [arn],
            "detail": {},
        })
    );

    let v2 = ScheduleEvent::from_event(
        "Nightly",
        ScheduleKind::Scheduler,
        &json!({"ScheduleExpression": "rate(1 day)", "Name": "nightly", "GroupName": "ops"}),
    )
    .unwrap();
    let arn = schedule_arn(&v2, "F", "s", "1");
    assert_eq!(arn, "arn:aws:scheduler:us-east-1:1:schedule/ops/nightly");
    let event = scheduled_event(v2.kind, "1", &arn, time);
    assert_eq!(event["source"], "aws.scheduler");
    assert_eq!(event["detail-type"], "Scheduled Event");
    let long = schedule_arn(&rule, &"F".repeat(80), "s", "1");
    assert_eq!(long.rsplit('/').next().unwrap().len(), 64);
}

#[test]
fn enabled_state_and_input_are_read() {
    let rule = |props: Value| ScheduleEvent::from_event("E", ScheduleKind::Rule, &props);
    let v2 = |props: Value| ScheduleEvent::from_event("E", ScheduleKind::Scheduler, &props);
    let e = rule(json!({"Schedule": "rate(1 minute)"})).unwrap();
    assert!(e.enabled && e.input.is_none());
    assert_eq!(
        e.expression,
        ScheduleExpression::Rate(Duration::from_secs(60))
    );
    assert!(
        !rule(json!({"Schedule": "rate(1 minute)", "Enabled": false}))
            .unwrap()
            .enabled
    );
    // Parameters resolve to strings.
    assert!(
        !rule(json!({"Schedule": "rate(1 minute)", "Enabled": "false"}))
            .unwrap()
            .enabled
    );
    assert!(
        !rule(json!({"Schedule": "rate(1 minute)", "State": "DISABLED"}))
            .unwrap()
            .enabled
    );
    assert!(
        rule(json!({"Schedule": "rate(1 minute)", "Enabled": true, "State": "ENABLED"})).is_err()
    );
    assert!(rule(json!({"Schedule": "rate(1 minute)", "Input": "{not json"})).is_err());
    assert!(rule(json!({"Enabled": true})).is_err());
    let e = rule(json!({"Schedule": "rate(1 minute)", "Input": "{\"sweep\": {\"shard\": 3}}"}))
        .unwrap();
    assert_eq!(e.input, Some(json!({"sweep": {"shard": 3}})));

    let e = v2(
        json!({"ScheduleExpression": "rate(2 hours)", "State": "DISABLED", "Input": "plain text"}),
    )
    .unwrap();
    assert!(!e.enabled);
    assert_eq!(e.input, Some(json!("plain text")));
    assert_eq!(
        e.expression,
        ScheduleExpression::Rate(Duration::from_secs(7200))
    );
    assert!(v2(json!({"ScheduleExpression": "rate(1 minute)", "Enabled": true})).is_err());
    assert!(v2(json!({"Schedule": "rate(1 minute)"})).is_err());
}
