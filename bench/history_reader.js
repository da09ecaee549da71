// A node-opcua HistoryRead client for bench/run.py's history scenario (another OPC UA stack than asyncua, whose
// decoding costs ~11.5 us per value and so caps one asyncua reader near 85,000 values/s whatever the server does).
// Usage: node bench/history_reader.js '{"endpoint":..., "name":"System1.Gen...", "start":ISO, "end":ISO,
//                                       "perRequest":1000}'
// Reads the node's raw history from start to end, following continuation points; prints one JSON line:
// {"values": N, "requests": R, "seconds": S, "client_cpu_s": C}. NODE_PATH points at tests/interop/node_modules.
"use strict";
const {
  OPCUAClient, MessageSecurityMode, SecurityPolicy, TimestampsToReturn, StatusCodes,
} = require("node-opcua-client");
const { ReadRawModifiedDetails, HistoryReadRequest } = require("node-opcua-types");

const NAMESPACE_URI = "urn:wincc-opcua-bridge:tags";

async function main() {
  const args = JSON.parse(process.argv[2]);
  const client = OPCUAClient.create({
    endpointMustExist: false, securityMode: MessageSecurityMode.None, securityPolicy: SecurityPolicy.None,
    requestedSessionTimeout: 120000, connectionStrategy: { maxRetry: 0 }, defaultSecureTokenLifetime: 600000,
  });
  await client.connect(args.endpoint);
  const session = await client.createSession();
  const ns = (await session.readNamespaceArray()).indexOf(NAMESPACE_URI);
  if (ns < 0) throw new Error("namespace not found");
  const nodeId = `ns=${ns};s=${args.name}`;
  const details = new ReadRawModifiedDetails({
    isReadModified: false, startTime: new Date(args.start), endTime: new Date(args.end),
    numValuesPerNode: args.perRequest, returnBounds: false,
  });
  let values = 0, requests = 0, continuationPoint = null;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (;;) {
    const response = await session.historyRead(new HistoryReadRequest({
      historyReadDetails: details, timestampsToReturn: TimestampsToReturn.Both, releaseContinuationPoints: false,
      nodesToRead: [{ nodeId, continuationPoint }],
    }));
    requests += 1;
    const result = response.results[0];
    if (result.statusCode.value !== StatusCodes.Good.value && result.statusCode.name !== "GoodMoreData") {
      throw new Error(`HistoryRead: ${result.statusCode.toString()}`);
    }
    values += (result.historyData && result.historyData.dataValues) ? result.historyData.dataValues.length : 0;
    continuationPoint = result.continuationPoint;
    if (!continuationPoint || continuationPoint.length === 0) break;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  await session.close();
  await client.disconnect();
  console.log(JSON.stringify({ values, requests, seconds, client_cpu_s: (cpu.user + cpu.system) / 1e6 }));
}

main().catch((err) => { console.error(err && err.stack ? err.stack : String(err)); process.exit(1); });
