# syntax=docker/dockerfile:1
#
# The image of the GitHub Action (action.yml, beside this file). It is not
# deploy/docker/Dockerfile, for two rules of GitHub's runner:
# - it builds an action's Dockerfile with the Dockerfile's own directory as the build context,
#   so only a Dockerfile at the repository root sees the sources with `COPY . .`;
# - it runs Docker actions as the default user, root, because the workspace it mounts and the
#   $GITHUB_OUTPUT file belong to the runner's user: a USER line would lock siteport out of
#   both. So this final stage sets none (deploy/docker/Dockerfile, for everything else, runs
#   as a non-root user).
# The build stage runs the same cargo command as deploy/docker/Dockerfile and scripts/test
# (crates/siteport/tests/deploy.rs checks that the three agree).

FROM rust:1.89-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p siteport
RUN install -D -m 0755 target/release/siteport /out/siteport

FROM gcr.io/distroless/cc-debian12
COPY --from=build /out/siteport /usr/local/bin/siteport
# The password comes from the step's environment (SITEPORT_CRED_<NAME>_PASSWORD, from
# `secrets`), read by the env backend; nothing is stored in the image or the workspace.
ENV SITEPORT_CREDENTIAL_BACKEND=env
ENTRYPOINT ["/usr/local/bin/siteport"]
