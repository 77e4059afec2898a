# MetaStore container image.
#
#   docker build -t metastore .
#   docker run -d --name metastore -p 2379:2379 -p 12379:12379 -p 9090:9090 -p 8080:8080 \
#     -v /data/metastore:/var/lib/metastore metastore
#
# Two stages: the build stage installs every dependency (TypeScript included) and compiles;
# the run stage gets the compiled dist/, the proto files and production dependencies only.
# Configuration works as outside a container: /etc/metastore/metastore.yaml (mount your own
# over it), METASTORE_SERVER_* variables on top, and etcd-style flags after the image name
# on top of both. The baked-in file binds every port on all interfaces, as a container must.
ARG NODE_IMAGE=docker.io/library/node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here; classic-level loads
# its prebuilt binary at run time, so nothing needs an install script.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY proto ./proto
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
# A fixed UID/GID (10001) so volume ownership is predictable across hosts and image rebuilds.
RUN groupadd --system --gid 10001 metastore \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/metastore --no-create-home metastore \
 && mkdir -p /var/lib/metastore /etc/metastore \
 && chown metastore:metastore /var/lib/metastore
WORKDIR /opt/metastore
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
COPY --from=build /src/bin ./bin
COPY deploy/docker/metastore.yaml /etc/metastore/metastore.yaml
ENV NODE_ENV=production
USER metastore
VOLUME ["/var/lib/metastore"]
# client (gRPC), peer (raft), metrics, health
EXPOSE 2379 12379 9090 8080
# The health port follows METASTORE_SERVER_HEALTH_PORT when it is set.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.METASTORE_SERVER_HEALTH_PORT || 8080) + '/liveness').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and receives SIGTERM itself, so `docker stop` drains and closes
# the database; the stop timeout should exceed graceful_shutdown_timeout (30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/opt/metastore/bin/metastore", "--config", "/etc/metastore/metastore.yaml"]
