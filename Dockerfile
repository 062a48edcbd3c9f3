# The tuna controller image: a static-ish release build on a small non-root base.
#   docker build -t tuna:dev .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin tuna

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tuna /usr/local/bin/tuna
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tuna"]
CMD ["serve", "--listen", "0.0.0.0:8080", "--data-dir", "/data"]
