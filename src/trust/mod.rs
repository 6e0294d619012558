//! What modelgate trusts: public keys, and certificate anchors with the
//! path validation that reaches them. Kept apart from the bundle (what we
//! were given) and from verification (what we require).

pub mod chain;
pub mod keys;
pub mod sigstore;

pub use chain::{Certificate, ChainError, ValidatedChain};
pub use keys::{Curve, KeyError, PrivateKey, PublicKey};

/// The trusted material a verification runs against.
#[derive(Clone, Debug)]
pub enum TrustedMaterial {
    /// Any of these keys may have signed (the key method).
    Keys {
        /// The trusted keys.
        keys: Vec<PublicKey>,
        /// When set, the bundle must also carry transparency-log evidence
        /// that verifies against this root (cosign-style key signing with a
        /// Rekor upload).
        transparency: Option<Box<sigstore_trust_root::TrustedRoot>>,
    },
    /// A signing certificate chaining to one of these anchors (the
    /// certificate method).
    Certificates {
        /// Root or intermediate certificates the operator trusts.
        anchors: Vec<Certificate>,
        /// Validate at the leaf's notBefore instead of now, accepting an
        /// expired leaf as the reference does.
        allow_expired: bool,
    },
    /// A Sigstore keyless signature: Fulcio certificate, transparency-log
    /// entry, and the signer identity required.
    Sigstore(Box<sigstore::Keyless>),
}
