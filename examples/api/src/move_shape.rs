//! The move-shape example's contract: the seed's `MoveShapeHub`, a shape
//! dragged in one browser that moves in every other.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use signal::{Context, HubError};

/// Where the shape is: its top-left corner as fractions of the board's width
/// and height (0 to 1), so boards of different sizes agree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ShapeModel {
    /// Distance from the board's left edge, as a fraction of its width.
    pub left: f64,
    /// Distance from the board's top edge, as a fraction of its height.
    pub top: f64,
}

/// What the hub calls on the pages.
#[signal::client]
pub trait MoveShapeClient {
    /// The shape's latest position, sent on the server's tick when it moved.
    async fn update_shape(&self, model: ShapeModel);
}

/// What the pages may call.
#[signal::hub(client = MoveShapeClient)]
pub trait MoveShape {
    /// Moves the shape; the other pages see it on the server's next tick.
    /// Both coordinates must be finite numbers from 0 to 1.
    async fn update_model(
        &self,
        cx: &Context<dyn MoveShapeClient>,
        model: ShapeModel,
    ) -> Result<(), HubError>;
    /// Where the shape is now (a page asks once it is connected).
    async fn shape(&self) -> ShapeModel;
}
