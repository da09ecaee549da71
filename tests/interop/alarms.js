// Alarms & Conditions ops for ua_client.js (node-opcua as an independent A&C client). State lives in `state`:
// subscriptions by name and event monitored items by name, each with every event received (fields by name).
// ops: eventMonitor {name, nodeId, fields, sub?, ofType?}  waitEvent {name, match, timeoutMs, count?}
//      events {name}  refresh {sub}  acknowledge|addComment {name, alarmId, comment, instance?}
//      historyEvents {nodeId, start, end, fields, severityAtLeast?, ofType?}  http {url, method, body}
"use strict";
const {
  AttributeIds, DataType, TimestampsToReturn, ClientMonitoredItem, constructEventFilter, ContentFilter,
  ContentFilterElement, FilterOperator, LiteralOperand, SimpleAttributeOperand, ElementOperand, ReadEventDetails,
  HistoryReadRequest, callConditionRefresh, Variant, resolveNodeId, NodeId,
} = require("node-opcua-client");

function plain(v) {
  if (!v) return null;
  const x = v.value;
  if (x === null || x === undefined) return null;
  if (x instanceof Date) return x.toISOString();
  if (Buffer.isBuffer(x)) return x.toString("hex");
  if (x instanceof NodeId) return x.toString();
  if (x && x.text !== undefined && x.locale !== undefined) return x.text;
  if (x && x.name !== undefined && x.value !== undefined && typeof x.isGood === "function") return x.name;
  if (typeof x === "bigint") return x.toString();
  return x;
}

function toObject(fields, values) {
  const ev = {};
  fields.forEach((f, i) => { ev[f] = plain(values[i]); });
  return ev;
}

function whereClause(step) {
  const elements = [];
  if (step.ofType) {
    elements.push(new ContentFilterElement({ filterOperator: FilterOperator.OfType,
      filterOperands: [new LiteralOperand({ value: new Variant({ dataType: DataType.NodeId, value: resolveNodeId(step.ofType) }) })] }));
  }
  if (step.severityAtLeast !== undefined) {
    elements.push(new ContentFilterElement({ filterOperator: FilterOperator.GreaterThanOrEqual, filterOperands: [
      new SimpleAttributeOperand({ typeDefinitionId: resolveNodeId("i=2041"), browsePath: [{ namespaceIndex: 0, name: "Severity" }],
                                   attributeId: AttributeIds.Value }),
      new LiteralOperand({ value: new Variant({ dataType: DataType.UInt16, value: step.severityAtLeast }) })] }));
  }
  if (elements.length === 2) {
    return new ContentFilter({ elements: [new ContentFilterElement({ filterOperator: FilterOperator.And,
      filterOperands: [new ElementOperand({ index: 1 }), new ElementOperand({ index: 2 })] }), ...elements] });
  }
  return elements.length ? new ContentFilter({ elements }) : undefined;
}

async function subscription(session, state, name) {
  if (!state.subs[name]) {
    state.subs[name] = await session.createSubscription2({
      requestedPublishingInterval: 100, requestedLifetimeCount: 600, requestedMaxKeepAliveCount: 10,
      maxNotificationsPerPublish: 0, publishingEnabled: true, priority: 1,
    });
  }
  return state.subs[name];
}

function matches(ev, match) {
  return Object.entries(match || {}).every(([k, v]) => ev[k] === v);
}

const ops = {
  async eventMonitor(session, step, state) {
    const sub = await subscription(session, state, step.sub || "s");
    const filter = constructEventFilter(step.fields, whereClause(step));
    const mon = { fields: step.fields, events: [], sub: step.sub || "s" };
    const item = ClientMonitoredItem.create(sub, { nodeId: step.nodeId, attributeId: AttributeIds.EventNotifier },
      { samplingInterval: 0, discardOldest: true, queueSize: 10000, filter }, TimestampsToReturn.Neither);
    await new Promise((resolve, reject) => { item.once("initialized", resolve); item.once("err", reject); });
    item.on("changed", (values) => mon.events.push(toObject(step.fields, values)));
    mon.item = item;
    state.monitors[step.name] = mon;
    return { status: item.statusCode ? item.statusCode.name : "Good", monitoredItemId: item.monitoredItemId };
  },
  async waitEvent(session, step, state) {
    const mon = state.monitors[step.name];
    const deadline = Date.now() + (step.timeoutMs || 5000);
    for (;;) {
      const found = mon.events.filter((e) => matches(e, step.match));
      if (found.length >= (step.count || 1)) return { event: found[found.length - 1], all: found };
      if (Date.now() > deadline) return { timeout: true, events: mon.events };
      await new Promise((r) => setTimeout(r, 20));
    }
  },
  async events(session, step, state) { return { events: state.monitors[step.name].events }; },
  async refresh(session, step, state) {
    const sub = state.subs[step.sub || "s"];
    const status = await callConditionRefresh(session, sub.subscriptionId);
    return { status: status.name };
  },
  async acknowledge(session, step, state) { return ackOrComment(session, step, state, "i=9111", "Acknowledge"); },
  async addComment(session, step, state) { return ackOrComment(session, step, state, "i=9029", "AddComment"); },
  async historyEvents(session, step) {
    const filter = constructEventFilter(step.fields, whereClause(step));
    const details = new ReadEventDetails({ startTime: new Date(step.start), endTime: new Date(step.end),
                                           numValuesPerNode: step.numValuesPerNode || 0, filter });
    const events = [];
    let cp = null;
    let calls = 0;
    for (;;) {
      const res = await session.historyRead(new HistoryReadRequest({ historyReadDetails: details,
        timestampsToReturn: TimestampsToReturn.Neither, releaseContinuationPoints: false,
        nodesToRead: [{ nodeId: step.nodeId, continuationPoint: cp }] }));
      calls += 1;
      const r = res.results[0];
      if (r.statusCode.isNotGood()) return { status: r.statusCode.name, events, calls };
      for (const e of (r.historyData && r.historyData.events) || []) events.push(toObject(step.fields, e.eventFields));
      cp = r.continuationPoint;
      if (!cp || cp.length === 0) return { status: r.statusCode.name, events, calls };
      if (calls > 1000) throw new Error("too many history pages");
    }
  },
  async http(session, step) {
    const r = await fetch(step.url, { method: step.method || "POST", headers: { "content-type": "application/json" },
                                      body: step.body ? JSON.stringify(step.body) : undefined });
    return { status: r.status };
  },
};

async function ackOrComment(session, step, state, typeMethod, instanceMethod) {
  const mon = state.monitors[step.name];
  const mine = mon.events.filter((e) => e.WinCCAlarmId === step.alarmId);
  if (!mine.length) return { error: "no event of alarm " + step.alarmId };
  const ev = mine[mine.length - 1];
  const condition = resolveNodeId(ev.ConditionId);
  const methodId = step.instance
    ? new NodeId(NodeId.NodeIdType.STRING, `${step.alarmId}#${instanceMethod}`, condition.namespace) : typeMethod;
  const r = await session.call({ objectId: condition, methodId, inputArguments: [
    { dataType: DataType.ByteString, value: Buffer.from(step.eventId || ev.EventId, "hex") },
    { dataType: DataType.LocalizedText, value: { text: step.comment } },
  ] });
  return { status: r.statusCode.name, eventId: ev.EventId };
}

module.exports = { ops };
