// Compiles against the published types (npm run typecheck): the SPEC 11 example, typed.
import { TickwireApiError, TickwireClient, colorOf, type AlertRule, type Status, type StreamEvent } from "tickwire";
import { ConnectionStatus, TickwireProvider, useAlerts, useOrders, usePositions, usePriceStream, useStream } from "tickwire/react";

const tw = new TickwireClient({ baseUrl: "", getToken: async () => "token", transport: "auto", protocol: "msgpack" });
const h = tw.subscribe("orders", { onEvent: (e: StreamEvent) => console.log(e.stream, e.type, e.id, e.data, e.replayed, e.reset) });
const p = tw.subscribe("prices", { symbols: ["AAPL"] });
h.release();
p.release();
const s: Status = tw.status;
const color: "green" | "yellow" | "red" = colorOf(s.state);
tw.onStatus((status) => console.log(status.state, status.color, status.transport, status.rttMs, status.fallbackReason, status.streams));
const total: number | null = tw.local.totalValue;
tw.local.orders.get("o1")?.status;
tw.local.positions.get("AAPL")?.quantity;
tw.local.prices.get("AAPL")?.price;
const feed = tw.alerts({ limit: 20 });
feed.onChange(() => console.log(feed.alerts.map((a) => a.alertId + " " + a.message), feed.loading, feed.error?.status));
feed.ack("a1").then((ack) => console.log(ack.ackedAt, ack.by));
feed.release();
tw.createAlertRule({ kind: "price_above", symbol: "AAPL", threshold: 190, severity: "warning" })
  .then((rule: AlertRule) => tw.updateAlertRule(rule.ruleId, { enabled: false }))
  .catch((err) => console.log(err instanceof TickwireApiError ? err.status : err));
tw.alertRules().then((rules) => rules.map((r) => tw.deleteAlertRule(r.ruleId)));
tw.alertHistory({ unacked: true, limit: 10 }).then(({ alerts, next }) => console.log(alerts[0]?.severity, next));
tw.reconnect();
tw.close();

export function usage(): unknown {
  const { prices } = usePriceStream(["AAPL"]);
  const { orders } = useOrders();
  const { positions, totalValue } = usePositions();
  const { events, last, status } = useStream("alerts", { limit: 10 });
  const { subscribePrices, unsubscribePrices, status: connection } = useStream();
  const { alerts, ack, loading, error } = useAlerts({ limit: 20 });
  if (alerts[0] && !loading && !error) void ack(alerts[0].alertId);
  subscribePrices(["SOL"]);
  unsubscribePrices(["SOL"]);
  return [prices.AAPL?.price, orders[0]?.orderId, positions, totalValue, events, last, status, connection.state, TickwireProvider, ConnectionStatus, color, total];
}
