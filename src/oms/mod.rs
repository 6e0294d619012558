//! The OpenSSF Model Signing format: the in-toto statement and its
//! `https://model_signing/signature/v1.0` predicate ([`manifest`]), the
//! Sigstore bundle and DSSE envelope that carry it ([`bundle`]), and signing
//! a model into one ([`sign`]); the pre-1.0 format, read only on request
//! ([`legacy`]). Decoding and encoding only: whether a
//! signature is trusted is decided a layer up, in `verify`.

pub mod bundle;
pub mod legacy;
pub mod manifest;
pub mod sign;
