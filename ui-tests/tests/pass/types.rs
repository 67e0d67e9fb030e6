//! Structs and enums with serde attributes as arguments and results; every
//! return shape, sync and async.
#![deny(warnings)]

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{HubError, HubStream};

/// A point.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Horizontal.
    pub x_value: f64,
    /// Vertical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y_value: Option<f64>,
}

/// A shape.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Shape {
    /// A circle.
    Circle {
        /// Its centre.
        centre: Point,
        /// Its radius.
        radius: f64,
    },
    /// A polygon.
    Polygon {
        /// Its corners.
        points: Vec<Point>,
    },
}

/// Geometry.
#[signal::hub]
pub trait Geometry {
    /// The middle of two points.
    async fn middle(&self, a: Point, b: Point) -> Point;
    /// Checked.
    fn checked(&self, shape: Shape) -> Result<Shape, HubError>;
    /// Fails or not.
    async fn fallible(&self, fail: bool) -> Result<(), HubError>;
    /// A stream that may not start.
    async fn maybe_stream(&self, n: u32) -> Result<HubStream<Point>, HubError>;
    /// Sync stream.
    fn sync_stream(&self) -> HubStream<String>;
    /// Unit spelled out.
    async fn unit(&self) -> ();
    /// Options and vectors.
    async fn many(
        &self,
        xs: Vec<Option<i32>>,
        names: std::collections::HashMap<String, u8>,
    ) -> Vec<i32>;
}

struct G;

impl Geometry for G {
    async fn middle(&self, a: Point, b: Point) -> Point {
        Point {
            x_value: (a.x_value + b.x_value) / 2.0,
            y_value: None,
        }
    }

    fn checked(&self, shape: Shape) -> Result<Shape, HubError> {
        Ok(shape)
    }

    async fn fallible(&self, fail: bool) -> Result<(), HubError> {
        if fail {
            Err(HubError::new("failed"))
        } else {
            Ok(())
        }
    }

    async fn maybe_stream(&self, n: u32) -> Result<HubStream<Point>, HubError> {
        let points = (0..n).map(|i| {
            Ok(Point {
                x_value: i as f64,
                y_value: None,
            })
        });
        Ok(Box::pin(futures_util::stream::iter(points)))
    }

    fn sync_stream(&self) -> HubStream<String> {
        Box::pin(futures_util::stream::empty())
    }

    async fn unit(&self) {}

    async fn many(
        &self,
        xs: Vec<Option<i32>>,
        names: std::collections::HashMap<String, u8>,
    ) -> Vec<i32> {
        let _ = names;
        xs.into_iter().flatten().collect()
    }
}

fn main() {
    use signal::protocol::MethodKind::*;
    let _ = G.into_hub();
    let d = <dyn Geometry>::descriptor();
    let kinds: Vec<_> = d.methods.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            Unary,
            Unary,
            Unary,
            ServerStream,
            ServerStream,
            FireAndForget,
            Unary
        ]
    );
    assert!(d.definitions.contains_key("Point"));
    assert!(d.definitions.contains_key("Shape"));
    assert_eq!(d.methods[0].docs, "The middle of two points.");
    assert_eq!(d.methods[2].returns, None);
}
