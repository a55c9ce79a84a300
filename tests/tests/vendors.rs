//! Each of the five vendors, with payloads from its seed document (/work/shared/seeds), through
//! one table-driven contract: refused when tampered, signed with a wrong secret, unsigned or
//! malformed; accepted when valid; a duplicate when repeated, also re-serialised (other spacing,
//! other key order); accepted under the rotated secret; and written once each to the workspace's
//! sink as the canonical envelope, whose `raw` is the request body byte for byte.
//! Then each vendor's specifics: distinct events sharing an id, optional fields empty or of
//! another JSON type, identities (delivery id, content key), the signed body's event type over an
//! unsigned header, Wappcloud's GET handshake, WhatsAble's signature settings from routes.yaml.
//!
//! The suite runs twice, and must pass the same both times: `library::` with the five compiled
//! plugins in the plugins directory, `definition::` with only their definitions
//! (`plugins/definitions/*.vendor.yaml`).

mod library {
    const FORM: switchyard_e2e::VendorForm = switchyard_e2e::VendorForm::Library;
    include!("vendors/suite.rs");
}

mod definition {
    const FORM: switchyard_e2e::VendorForm = switchyard_e2e::VendorForm::Definition;
    include!("vendors/suite.rs");
}
