# One Natter node. The image runs the same command as `npm start`; settings come from NATTER_*
# variables (see .env.example).
FROM node:24-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY client-sdk/package.json client-sdk/
# patch-package applies patches/ at install (ts-mls 1.6.4's ratchet tree check: docs/decisions.md).
COPY patches/ patches/
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
ENV NATTER_DATA_DIR=/data
VOLUME /data
EXPOSE 1883 8083 8080
USER node
CMD ["sh", "bin/natter", "start"]
