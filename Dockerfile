# modelgate as a static binary in an empty image, for use as a Kubernetes
# initContainer. The image holds three files: /modelgate (static, musl),
# /LICENSE and /etc/ssl/certs/ca-certificates.crt. modelgate checks registries
# against the Mozilla roots built into it; the CA bundle is the system bundle it
# also trusts (the same roots: not needed, kept for tools that look for one).
# Two ways to build it:
#
#   From source, where base images can be pulled (the default, last stage):
#     docker build -t modelgate .
#
#   From the static binary built on this machine, with no base image:
#     scripts/build-static.sh
#     docker build --target local -t modelgate .
#   (--build-arg BINARY=PATH and CA_BUNDLE=PATH, paths inside the build
#   context, pick other files.)
#
# Both give the same image: run as 65532:65532, ENTRYPOINT ["/modelgate"],
# CMD ["init"], configured by MODELGATE_* variables. `local` comes first
# because the classic builder (no BuildKit) builds every stage before the
# target, and the others need a base image.

FROM scratch AS local
ARG BINARY=target/x86_64-unknown-linux-musl/release/modelgate
ARG CA_BUNDLE=target/x86_64-unknown-linux-musl/release/ca-certificates.crt
COPY ${BINARY} /modelgate
COPY ${CA_BUNDLE} /etc/ssl/certs/ca-certificates.crt
COPY LICENSE /LICENSE
# Runs as an unprivileged user; the mounts it verifies only need to be readable.
USER 65532:65532
ENTRYPOINT ["/modelgate"]
CMD ["init"]

# Alpine's Rust targets musl and links statically by default, like
# scripts/build-static.sh.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin modelgate \
 && strip target/release/modelgate \
 && ! ldd target/release/modelgate 2>/dev/null | grep -q '=>'

FROM scratch
COPY --from=build /src/target/release/modelgate /modelgate
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY LICENSE /LICENSE
USER 65532:65532
ENTRYPOINT ["/modelgate"]
CMD ["init"]
