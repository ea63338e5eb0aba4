# syntax=docker/dockerfile:1
# Build: compile TypeScript and the better-sqlite3 addon with the full toolchain.
# Node 24 (the current LTS; package.json "engines" allows 20, 22 and 24): the
# addon is built here for Node 24's ABI, so the run stage must be the same major.
FROM node:24-bookworm AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY config ./config
COPY storage ./storage
COPY server ./server
COPY web ./web
COPY bin ./bin
RUN npm run build && npm prune --omit=dev

# Run: slim image, same Node major as the build stage (the addon's ABI), non-root.
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    MIRROR_HOST=0.0.0.0 \
    MIRROR_PORT=8080 \
    MIRROR_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/config ./config
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown node:node /data && chmod 750 /data
USER node
VOLUME ["/data"]
EXPOSE 8080
# tini is PID 1: it forwards SIGTERM to node and reaps children, so
# `docker stop` triggers goldmirror's graceful shutdown.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.MIRROR_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/goldmirror.js"]
CMD ["serve"]
