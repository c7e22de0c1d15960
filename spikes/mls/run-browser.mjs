// Usage: node run-browser.mjs <bundle.js> [wasm file to serve at /<basename>]
import { createRequire } from "node:module"
import http from "node:http"
import fs from "node:fs"
import path from "node:path"
const require = createRequire("/work/main/package.json")
const { chromium } = require("playwright-core")
const [bundle, ...extra] = process.argv.slice(2)
const files = { "/bundle.js": fs.readFileSync(bundle) }
for (const f of extra) files["/" + path.basename(f)] = fs.readFileSync(f)
const server = http.createServer((req, res) => {
  const u = req.url.split("?")[0]
  if (u === "/") { res.setHeader("content-type", "text/html"); return res.end('<!doctype html><script src="/bundle.js"></script>') }
  const body = files[u]
  if (!body) { res.statusCode = 404; return res.end() }
  res.setHeader("content-type", u.endsWith(".wasm") ? "application/wasm" : "text/javascript")
  res.end(body)
})
await new Promise((r) => server.listen(0, "127.0.0.1", r))
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"], headless: true })
const page = await browser.newPage()
page.on("console", (m) => console.log("[page]", m.text()))
page.on("pageerror", (e) => console.log("[pageerror]", e.message))
const tLoad = Date.now()
await page.goto(`http://127.0.0.1:${server.address().port}/`)
await page.waitForFunction(() => typeof window.__run === "function")
console.log("page load + bundle eval ms:", Date.now() - tLoad)
const res = await page.evaluate(() => window.__run())
for (const l of res.lines) console.log(l)
if (!res.ok) console.log("ERROR", res.error)
else console.log(JSON.stringify(res.fig, null, 1))
await browser.close(); server.close()
process.exit(res.ok ? 0 : 1)
