// node-opcua client driven by a JSON script, for interop tests: an independent OPC UA stack talking to the bridge.
// Usage: node ua_client.js '<json>'   where json = {endpoint, user?, password?, securityMode?, securityPolicy?,
//   certificateFile?, privateKeyFile?, applicationUri?, pkiDir?, steps: [...]}
// certificateFile/privateKeyFile: the client's own certificate (sent on every policy, None included); pkiDir: the
// client's trust folders (the server's certificate is accepted on first contact and kept there).
// Each step is {op: ...}; the results are printed as one JSON array on stdout (one entry per step).
// ops: browse {nodeId, maxRefs?} (follows BrowseNext until done, returns all references and the number of calls),
//      read {nodeId, attribute?}, write {nodeId, dataType, value}, subscribe {nodeId, samplingInterval, count, timeoutMs},
//      historyRaw {nodeId, start, end, numValuesPerNode?} (follows continuation points),
//      historyProcessed {nodeId, start, end, aggregate, processingInterval}, call {objectId, methodId, inputArguments}
//      alarms (alarms.js): eventMonitor, waitEvent, events, refresh, acknowledge, addComment, historyEvents, http
"use strict";
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, AttributeIds, DataType, UserTokenType, TimestampsToReturn,
  ClientSubscription, ClientMonitoredItem, BrowseDirection, AggregateFunction, ReadRawModifiedDetails,
  ReadProcessedDetails, StatusCodes, HistoryReadRequest,
} = require("node-opcua-client");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const alarms = require("./alarms.js");

function dv(d) {
  if (!d) return null;
  let v = d.value ? d.value.value : null;
  if (v instanceof Date) v = v.toISOString();
  if (typeof v === "bigint") v = v.toString();
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === "number" && d.value.dataType === DataType.Int64) v = v[1];
  return {
    value: v,
    dataType: d.value ? DataType[d.value.dataType] : null,
    status: d.statusCode ? d.statusCode.name : "Good",
    statusValue: d.statusCode ? d.statusCode.value : 0,
    sourceTimestamp: d.sourceTimestamp ? d.sourceTimestamp.toISOString() : null,
    serverTimestamp: d.serverTimestamp ? d.serverTimestamp.toISOString() : null,
  };
}

async function browseAll(session, nodeId, maxRefs) {
  session.requestedMaxReferencesPerNode = maxRefs || 0;
  let result = await session.browse({
    nodeId, browseDirection: BrowseDirection.Forward, includeSubtypes: true, nodeClassMask: 0, resultMask: 63,
  });
  let calls = 1;
  const refs = [];
  const status = result.statusCode.name;
  for (;;) {
    for (const r of result.references || []) {
      refs.push({ nodeId: r.nodeId.toString(), browseName: r.browseName.name, displayName: r.displayName.text,
                  nodeClass: r.nodeClass });
    }
    if (!result.continuationPoint || result.continuationPoint.length === 0) break;
    result = await session.browseNext(result.continuationPoint, false);
    calls += 1;
    if (result.statusCode.isNot(StatusCodes.Good)) return { status: result.statusCode.name, refs, calls };
  }
  return { status, refs, calls };
}

async function historyRaw(session, step) {
  const values = [];
  let cp = null;
  let calls = 0;
  for (;;) {
    const details = new ReadRawModifiedDetails({
      isReadModified: false, startTime: new Date(step.start), endTime: new Date(step.end),
      numValuesPerNode: step.numValuesPerNode || 0, returnBounds: !!step.returnBounds,
    });
    const res = await session.historyRead(new HistoryReadRequest({
      historyReadDetails: details, timestampsToReturn: TimestampsToReturn.Both, releaseContinuationPoints: false,
      nodesToRead: [{ nodeId: step.nodeId, continuationPoint: cp }],
    }));
    calls += 1;
    const r = res.results[0];
    if (r.statusCode.isNotGood() && r.statusCode.name !== "GoodMoreData") return { status: r.statusCode.name, values, calls };
    for (const d of (r.historyData && r.historyData.dataValues) || []) values.push(dv(d));
    cp = r.continuationPoint;
    if (!cp || cp.length === 0) return { status: r.statusCode.name, values, calls };
    if (calls > 10000) throw new Error("too many history pages");
  }
}

async function historyProcessed(session, step) {
  const agg = AggregateFunction[step.aggregate];
  if (agg === undefined) throw new Error("unknown aggregate " + step.aggregate);
  const details = new ReadProcessedDetails({
    startTime: new Date(step.start), endTime: new Date(step.end), processingInterval: step.processingInterval,
    aggregateType: [agg], aggregateConfiguration: { useServerCapabilitiesDefaults: true },
  });
  const res = await session.historyRead(new HistoryReadRequest({
    historyReadDetails: details, timestampsToReturn: TimestampsToReturn.Both, releaseContinuationPoints: false,
    nodesToRead: [{ nodeId: step.nodeId }],
  }));
  const r = res.results[0];
  return { status: r.statusCode.name, values: ((r.historyData && r.historyData.dataValues) || []).map(dv) };
}

async function subscribe(session, step) {
  const sub = await session.createSubscription2({
    requestedPublishingInterval: step.publishingInterval || 100, requestedLifetimeCount: 100,
    requestedMaxKeepAliveCount: 10, maxNotificationsPerPublish: 1000, publishingEnabled: true, priority: 1,
  });
  const item = await sub.monitor({ nodeId: step.nodeId, attributeId: AttributeIds.Value },
    { samplingInterval: step.samplingInterval || 200, discardOldest: true, queueSize: 10 }, TimestampsToReturn.Both);
  const got = [];
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, step.timeoutMs || 5000);
    item.on("changed", (d) => { got.push(dv(d)); if (got.length >= (step.count || 1)) { clearTimeout(timer); resolve(); } });
  });
  const revised = item.monitoringParameters ? item.monitoringParameters.samplingInterval : null;
  await sub.terminate();
  return { values: got, revisedSamplingInterval: revised };
}

async function run(spec) {
  const own = spec.certificateFile ? {
    certificateFile: spec.certificateFile, privateKeyFile: spec.privateKeyFile, applicationUri: spec.applicationUri,
    clientCertificateManager: new OPCUACertificateManager({
      rootFolder: spec.pkiDir, automaticallyAcceptUnknownCertificate: true,
    }),
  } : {};
  const client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: MessageSecurityMode[spec.securityMode || "None"],
    securityPolicy: SecurityPolicy[spec.securityPolicy || "None"],
    connectionStrategy: { maxRetry: spec.maxRetry === undefined ? 2 : spec.maxRetry, initialDelay: 200, maxDelay: 1000 },
    requestedSessionTimeout: 60000,
    ...own,
  });
  await client.connect(spec.endpoint);
  const identity = spec.user ? { type: UserTokenType.UserName, userName: spec.user, password: spec.password }
                             : { type: UserTokenType.Anonymous };
  const session = await client.createSession(identity);
  const out = [];
  const state = { subs: {}, monitors: {} };
  try {
    // "nsu=<uri>;s=..." NodeIds are resolved against the server's NamespaceArray, as a user would pick them
    const nsArray = (await session.read({ nodeId: "i=2255", attributeId: AttributeIds.Value })).value.value;
    const resolve = (id) => {
      const m = /^nsu=([^;]+);(.*)$/.exec(id || "");
      return m ? `ns=${nsArray.indexOf(m[1])};${m[2]}` : id;
    };
    for (const raw of spec.steps) {
      const step = { ...raw, nodeId: resolve(raw.nodeId), objectId: resolve(raw.objectId), methodId: resolve(raw.methodId) };
      try {
        switch (step.op) {
          case "browse": out.push(await browseAll(session, step.nodeId, step.maxRefs)); break;
          case "read": {
            const d = await session.read({ nodeId: step.nodeId, attributeId: AttributeIds[step.attribute || "Value"] });
            out.push(dv(d)); break;
          }
          case "write": {
            const sc = await session.write({ nodeId: step.nodeId, attributeId: AttributeIds.Value,
              value: { value: { dataType: DataType[step.dataType], value: step.value } } });
            out.push({ status: sc.name }); break;
          }
          case "subscribe": out.push(await subscribe(session, step)); break;
          case "historyRaw": out.push(await historyRaw(session, step)); break;
          case "historyProcessed": out.push(await historyProcessed(session, step)); break;
          case "call": {
            const r = await session.call({ objectId: step.objectId, methodId: step.methodId,
                                           inputArguments: step.inputArguments || [] });
            out.push({ status: r.statusCode.name }); break;
          }
          default:
            if (alarms.ops[step.op]) { out.push(await alarms.ops[step.op](session, step, state)); break; }
            throw new Error("unknown op " + step.op);
        }
      } catch (err) {
        out.push({ error: String(err && err.stack ? err.stack : err) });
      }
    }
  } finally {
    await session.close();
    await client.disconnect();
  }
  return out;
}

run(JSON.parse(process.argv[2]))
  // exit only once the (possibly large) output is flushed: a pipe is asynchronous in node
  .then((out) => { process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0)); })
  .catch((err) => { process.stderr.write(String(err && err.stack ? err.stack : err) + "\n"); process.exit(3); });
