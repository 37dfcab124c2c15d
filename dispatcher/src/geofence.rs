//! Geofences: named (Multi)Polygons from a GeoJSON FeatureCollection (`GEOFENCES_FILE`).
//!
//! Which fences contain an agent is decided once, when its profile is written, and stored with
//! the agent (`regions`), so matching compares names and never does geometry on the hot path.

use std::path::Path;

use geo::{Contains, MultiPolygon, Point};
use shared::domain::RegionName;

/// The loaded geofences, in file order.
#[derive(Debug, Clone, Default)]
pub struct Geofences {
    fences: Vec<(String, MultiPolygon<f64>)>,
}

impl Geofences {
    /// Reads and parses the file; the error says what is wrong with it.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a FeatureCollection of named Polygons and MultiPolygons.
    pub fn parse(text: &str) -> Result<Self, String> {
        let collection: geojson::FeatureCollection = text
            .parse()
            .map_err(|e| format!("not a GeoJSON FeatureCollection: {e}"))?;
        let mut fences = Vec::new();
        for (i, feature) in collection.features.iter().enumerate() {
            let name = feature
                .property("name")
                .and_then(|n| n.as_str())
                .filter(|n| !n.trim().is_empty())
                .ok_or_else(|| format!("feature {i} has no properties.name"))?
                .to_owned();
            RegionName::try_from(name.clone()).map_err(|e| format!("feature {i}: {e}"))?;
            let geometry = feature
                .geometry
                .as_ref()
                .ok_or_else(|| format!("feature {name:?} has no geometry"))?;
            let shape = geo::Geometry::<f64>::try_from(&geometry.value)
                .map_err(|e| format!("feature {name:?}: {e}"))?;
            let area = match shape {
                geo::Geometry::Polygon(p) => MultiPolygon::new(vec![p]),
                geo::Geometry::MultiPolygon(m) => m,
                _ => return Err(format!("feature {name:?} is not a Polygon or MultiPolygon")),
            };
            if fences.iter().any(|(n, _)| n == &name) {
                return Err(format!("two features are named {name:?}"));
            }
            fences.push((name, area));
        }
        Ok(Self { fences })
    }

    /// Whether a fence of this name exists.
    pub fn has(&self, name: &str) -> bool {
        self.fences.iter().any(|(n, _)| n == name)
    }

    /// The names of the fences containing the point (lat, lon).
    pub fn containing(&self, lat: f64, lon: f64) -> Vec<String> {
        let point = Point::new(lon, lat);
        self.fences
            .iter()
            .filter(|(_, area)| area.contains(&point))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The fences as a GeoJSON FeatureCollection, each feature named by `properties.name`: what
    /// the operators' console draws.
    pub fn to_geojson(&self) -> geojson::FeatureCollection {
        let features = self
            .fences
            .iter()
            .map(|(name, area)| {
                let mut properties = geojson::JsonObject::new();
                properties.insert("name".into(), name.clone().into());
                geojson::Feature {
                    geometry: Some(geojson::Geometry::new(geojson::GeometryValue::from(area))),
                    properties: Some(properties),
                    ..geojson::Feature::default()
                }
            })
            .collect();
        geojson::FeatureCollection {
            features,
            bbox: None,
            foreign_members: None,
        }
    }
}

/// `GET /v1/geofences`: the loaded `GEOFENCES_FILE` (empty without one).
#[utoipa::path(
    get,
    path = "/v1/geofences",
    operation_id = "listGeofences",
    tag = "roster",
    responses((
        status = 200,
        description = "A GeoJSON FeatureCollection of the geofences, each named by `properties.name`.",
        body = Object
    )),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: http_kit::Authenticated<http_kit::Admin>,
    fences: actix_web::web::Data<Geofences>,
) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(fences.to_geojson())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FENCES: &str = r#"{"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"name":"box"},"geometry":{"type":"Polygon",
        "coordinates":[[[10,50],[20,50],[20,60],[10,60],[10,50]]]}},
      {"type":"Feature","properties":{"name":"two"},"geometry":{"type":"MultiPolygon",
        "coordinates":[[[[0,0],[1,0],[1,1],[0,1],[0,0]]],[[[5,5],[6,5],[6,6],[5,6],[5,5]]]]}}
    ]}"#;

    #[test]
    fn points_inside_and_outside() {
        let g = Geofences::parse(FENCES).expect("valid fences");
        assert!(g.has("box") && g.has("two") && !g.has("nope"));
        assert_eq!(g.containing(55.0, 15.0), vec!["box"]);
        assert!(g.containing(45.0, 15.0).is_empty());
        assert_eq!(g.containing(5.5, 5.5), vec!["two"]);
        assert!(g.containing(3.0, 3.0).is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Geofences::parse("{}").is_err());
        let unnamed = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},
          "geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
        assert!(Geofences::parse(unnamed)
            .expect_err("unnamed")
            .contains("name"));
        let point = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"name":"p"},
          "geometry":{"type":"Point","coordinates":[1,2]}}]}"#;
        assert!(Geofences::parse(point)
            .expect_err("point")
            .contains("Polygon"));
        for bad in ["Nordics", "eu west", &"x".repeat(65)] {
            let file = FENCES.replace("\"box\"", &format!("{bad:?}"));
            let e = Geofences::parse(&file).expect_err("a bad region name");
            assert!(e.contains("feature 0") && e.contains("region name"), "{e}");
        }
        let longest = FENCES.replace("\"box\"", &format!("{:?}", "a-z_0".repeat(12) + "abcd"));
        assert!(Geofences::parse(&longest).is_ok());
    }
}
