//! The REST API under `/api/v1` (DESIGN §4).

mod entities;
mod headers;
mod library;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .route("/library", web::get().to(library::get))
            .route("/ws", web::get().to(crate::ws::connect))
            .configure(entities::resource::<entities::Projects>)
            .configure(entities::resource::<entities::ContextBlocks>)
            .configure(entities::resource::<entities::SavedPrompts>),
    );
}
