//! `modelgate webhook`'s admission logic: which pods carry a model and the
//! gate they must run first ([`pod`], the contract the admission policies
//! in `deploy/admission/` share), the structural checks a pod must pass
//! ([`structure`], the rules of the policies' CEL), the AdmissionReview v1 wire format
//! ([`review`]), the decision for one review ([`decide`]: the mutation, the
//! structural checks, and the signature check through
//! [`crate::gate::admit`] and its cache), the policy in force, re-read when
//! it changes ([`policy`]), and the HTTPS server
//! ([`server`]). A front end beside [`crate::cli`], which turns the flags
//! into an [`decide::Admitter`] and a [`server::Listen`].

pub mod decide;
pub mod metrics;
pub mod pod;
pub mod policy;
pub mod review;
pub mod server;
pub mod structure;
pub mod tls;
