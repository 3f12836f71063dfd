//! Unit tests of template parsing and resolution, and a fake resource lookup that other
//! modules' tests share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::*;

pub(crate) fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")
}

/// Stand-in for provisioned resources: Ref and GetAtt give recognisable fake values.
pub(crate) struct FakeResources<'a>(pub(crate) &'a Template);

impl ResourceLookup for FakeResources<'_> {
    fn ref_value(&self, logical_id: &str) -> Option<String> {
        let resource = self.0.resource(logical_id)?;
        Some(match resource.resource_type.as_str() {
            "AWS::SQS::Queue" => format!("http://emulator/123456789012/{logical_id}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:us-east-1:123456789012:{logical_id}"),
            _ => format!("vitals-test-{logical_id}"),
        })
    }
    fn get_att(&self, logical_id: &str, attribute: &str) -> Result<String> {
        let resource = self.0.resource(logical_id).context("unknown")?;
        let service = match resource.resource_type.as_str() {
            "AWS::Kinesis::Stream" => "kinesis",
            "AWS::SQS::Queue" => "sqs",
            "AWS::DynamoDB::Table" => "dynamodb",
            _ => "other",
        };
        Ok(format!(
            "arn:aws:{service}:us-east-1:123456789012:{logical_id}/{attribute}"
        ))
    }
}

#[test]
fn short_and_long_forms_normalise_to_the_same_value() {
    let short = Template::parse(
        "Resources:\n  A:\n    Type: T\n    Properties:\n      X: !GetAtt B.Arn\n      Y: !Ref B\n      Z: !Sub '${B}-x'\n",
    )
    .unwrap();
    let long = Template::parse(
        "Resources:\n  A:\n    Type: T\n    Properties:\n      X: {'Fn::GetAtt': [B, Arn]}\n      Y: {Ref: B}\n      Z: {'Fn::Sub': '${B}-x'}\n",
    )
    .unwrap();
    assert_eq!(short.resources[0].properties, long.resources[0].properties);
}

#[test]
fn creation_order_respects_references() {
    let template = Template::load(&template_path()).unwrap();
    let order: Vec<&str> = template
        .creation_order(|_| false)
        .unwrap()
        .iter()
        .map(|r| r.logical_id.as_str())
        .collect();
    let position = |id: &str| order.iter().position(|x| *x == id).unwrap();
    assert!(position("RouteDLQ") < position("RouteQueue"));
    assert!(position("RouteQueue") < position("AlertsToRouteSubscription"));
    assert!(position("AlertsTopic") < position("AlertsToRouteSubscription"));
    assert!(position("ReadingsStream") < position("DetectFunction"));
    assert!(position("DetectFailureQueue") < position("DetectFunction"));
}

#[test]
fn outputs_sub_resolves() {
    let template = Template::load(&template_path()).unwrap();
    // DistrictHospitalPhone has no default (issue 16): the local stand-in.
    let phone = BTreeMap::from([(
        "DistrictHospitalPhone".to_string(),
        crate::stack::LOCAL_HOSPITAL_PHONE.to_string(),
    )]);
    let parameters = template.parameter_values(&phone).unwrap();
    assert_eq!(parameters["ReadingsShardCount"], "2");
    let resolver = Resolver {
        parameters: &parameters,
        conditions: &template.conditions,
        stack_name: "s",
        account_id: "1",
        resources: &FakeResources(&template),
    };
    let sub = serde_json::json!({"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/${StageName}"});
    assert_eq!(
        resolver.resolve(&sub).unwrap().unwrap(),
        "https://vitals-test-HttpApi.execute-api.us-east-1.amazonaws.com/dev"
    );
    let bad = serde_json::json!({"Fn::GetAZs": ""});
    let err = resolver.resolve(&bad).unwrap_err();
    assert!(format!("{err:#}").contains("Fn::GetAZs"));
}
