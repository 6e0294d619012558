# modelgate as a static binary in an empty image, for use as a Kubernetes
# initContainer. Build: docker build -t modelgate .
#
# Alpine's Rust targets musl and links statically by default, so the binary
# needs nothing from the image it runs in: no libc, no shell, no CA bundle.
FROM rust:1.95-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin modelgate \
 && strip target/release/modelgate \
 && ! ldd target/release/modelgate 2>/dev/null | grep -q '=>'

FROM scratch
COPY --from=build /src/target/release/modelgate /modelgate
COPY LICENSE /LICENSE
# Runs as an unprivileged user; mounts it verifies only need to be readable.
USER 65532:65532
ENTRYPOINT ["/modelgate"]
CMD ["--help"]
