// One subscribed node-opcua client (another OPC UA stack than the servers'), the twin of bench/subscriber.py:
// subscribes to every tag, counts notifications, measures latency (receive time - SourceTimestamp).
// Usage: node bench/subscriber.js '{"endpoint":..., "tagsFile":..., "seconds":20, "warmup":3, "samplingMs":1000,
//                                  "publishMs":500, "signalWindow":true, "goFile":"/path"}'
// With goFile: after the warmup prints "subscribed" and waits for that file to exist (the harness saw the server
// settle) before the window opens.
// node-opcua comes from tests/interop (npm ci there); the harness sets NODE_PATH to its node_modules.
// Prints "start" when counting starts, then one JSON line like the Python subscriber's.
// Monitored items are created with raw CreateMonitoredItems requests and counted from the subscription's raw
// notifications: one ClientMonitoredItem object per tag would measure the client's bookkeeping at 100k tags.
"use strict";
const fs = require("fs");
const {
  OPCUAClient, AttributeIds, TimestampsToReturn, ClientSubscription, MonitoringMode, MessageSecurityMode,
  SecurityPolicy,
} = require("node-opcua-client");

const NAMESPACE_URI = "urn:wincc-opcua-bridge:tags";

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

async function main() {
  const args = JSON.parse(process.argv[2]);
  const names = JSON.parse(fs.readFileSync(args.tagsFile, "utf8")).map((entry) => entry[0]);
  const client = OPCUAClient.create({
    endpointMustExist: false, securityMode: MessageSecurityMode.None, securityPolicy: SecurityPolicy.None,
    requestedSessionTimeout: 120000, connectionStrategy: { maxRetry: 0 }, defaultSecureTokenLifetime: 600000,
  });
  await client.connect(args.endpoint);
  const session = await client.createSession();
  const nsArray = await session.readNamespaceArray();
  const ns = nsArray.indexOf(NAMESPACE_URI);
  if (ns < 0) throw new Error("namespace not found");
  const sub = ClientSubscription.create(session, {
    requestedPublishingInterval: args.publishMs, requestedLifetimeCount: 1000, requestedMaxKeepAliveCount: 100,
    maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1,
  });
  await new Promise((resolve, reject) => { sub.once("started", resolve); sub.once("internal_error", reject); });

  let counting = false;
  let count = 0;
  const latencies = [];
  sub.on("raw_notification", (message) => {
    if (!counting) return;
    for (const data of message.notificationData || []) {
      if (!data || !data.monitoredItems) continue;
      const now = Date.now();
      for (const item of data.monitoredItems) {
        count += 1;
        const src = item.value && item.value.sourceTimestamp;
        if (src && latencies.length < 200000) latencies.push((now - src.getTime()) / 1000);
      }
    }
  });

  const t0 = Date.now();
  let handle = 1;
  for (let i = 0; i < names.length; i += 2000) {
    const itemsToCreate = names.slice(i, i + 2000).map((name) => ({
      itemToMonitor: { nodeId: `ns=${ns};s=${name}`, attributeId: AttributeIds.Value },
      monitoringMode: MonitoringMode.Reporting,
      requestedParameters: { clientHandle: handle++, samplingInterval: args.samplingMs, queueSize: 1,
                             discardOldest: true },
    }));
    const res = await session.createMonitoredItems({ subscriptionId: sub.subscriptionId,
      timestampsToReturn: TimestampsToReturn.Both, itemsToCreate });
    const bad = res.results.filter((r) => r.statusCode.isNotGood()).length;
    if (bad) throw new Error(`${bad} monitored items refused`);
  }
  const subscribeS = (Date.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, args.warmup * 1000));
  if (args.goFile) {
    console.log("subscribed");
    const deadline = Date.now() + 600000;
    while (!fs.existsSync(args.goFile)) {
      if (Date.now() > deadline) throw new Error(`${args.goFile} did not appear within 600 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  counting = true;
  if (args.signalWindow) console.log("start");
  const t1 = Date.now();
  await new Promise((r) => setTimeout(r, args.seconds * 1000));
  counting = false;
  const elapsed = (Date.now() - t1) / 1000;
  latencies.sort((a, b) => a - b);
  const p50 = percentile(latencies, 50);
  const p99 = percentile(latencies, 99);
  console.log(JSON.stringify({
    notifications: count, per_second: count / elapsed, subscribe_s: subscribeS,
    latency_p50_ms: p50 === null ? null : p50 * 1000, latency_p99_ms: p99 === null ? null : p99 * 1000,
  }));
  await sub.terminate();
  await session.close();
  await client.disconnect();
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
