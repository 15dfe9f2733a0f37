# The operator image (ghcr.io/caduceus-dev/caduceus:<version>): one static
# binary on a distroless base, running as a non-root user. Not used by the
# tests, which run the operator in-process.
#
#   docker build -t ghcr.io/caduceus-dev/caduceus:0.1.0 .
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# musl links statically: the final image needs no libc.
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin caduceus \
 && cp target/x86_64-unknown-linux-musl/release/caduceus /caduceus

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /caduceus /caduceus
# The chart's pod security context runs it as this user too.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/caduceus"]
CMD ["run"]
