# syntax=docker/dockerfile:1
# The taskgrant operator image. Build: docker build -t taskgrant:dev .
# NODE_VERSION follows hack/versions.env (src/packaging/dockerfile.test.ts keeps them equal).
ARG NODE_VERSION=24.21.0

FROM node:${NODE_VERSION}-slim AS build
WORKDIR /src
# Dependencies first: this layer is reused until the lockfile changes. `npm install` rather than
# `npm ci` for the reason the Makefile gives (npm 11 refuses this lockfile in ci over jest's
# optional platform packages); it installs the lockfile's versions all the same.
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund --loglevel=error

FROM node:${NODE_VERSION}-slim
ENV NODE_ENV=production
WORKDIR /app
# package.json carries "type": "module", without which Node would not load dist/ as ESM.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# The default policy set only: policies/tests/ is the policies' test suite.
COPY policies/schema.cedarschema policies/*.cedar ./policies/
COPY crds ./crds
COPY bin ./bin
# Numeric, so that the kubelet can verify runAsNonRoot (the image's "node" user is 1000).
USER 1000:1000
EXPOSE 8080 9443
# Memory: a small young generation (V8 reserves 64 MB of semi-space by default, mostly idle for a
# controller), two malloc arenas (glibc otherwise keeps one per thread, fragmenting), and Cedar's
# WebAssembly compiled on the main thread (background compile threads leave about 30 MB of
# compiler memory behind), and a heap that grows in smaller steps (--optimize-for-size: after a
# burst of grants the old generation otherwise holds ≈40 MB of uncollected garbage; measured at
# no cost to grant, burst or admission figures). Measured by `make bench` (memory.*).
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "--max-semi-space-size=4", "--wasm-num-compilation-tasks=0", "--optimize-for-size", "dist/src/main.js"]
