// Types of the tickwire React bindings (/tickwire-react.js). SPEC section 11.
import type { Context, ReactElement, ReactNode } from "react";
import type { Alert, AlertAck, ClientOptions, Order, Position, Price, Status, StreamEvent, SubscribeOptions, Subscription, TickwireApiError, TickwireClient } from "./tickwire.js";

export interface StreamState {
  state: string;
  detail: string;
}

/** The client of the nearest provider (the seeds' StreamContext). */
export declare const StreamContext: Context<TickwireClient | null>;

export interface TickwireProviderProps extends ClientOptions {
  /** Use this client instead of making one (it is then not closed on unmount). */
  client?: TickwireClient | null;
  children?: ReactNode;
}
/** Makes a client from its props (read once; a changed `token` logs in, null logs out). */
export declare function TickwireProvider(props: TickwireProviderProps): ReactElement;

export declare function useTickwire(): TickwireClient;
/** The whole status: re-renders on state changes and (a few times a second) on counts. */
export declare function useConnectionStatus(): Status;

export interface StreamResult {
  /** The latest events (opts.limit, default 50), oldest first. */
  events: StreamEvent[];
  last: StreamEvent | null;
  status: StreamState | null;
}
export interface StreamContextValue {
  client: TickwireClient;
  /** The client's status; re-renders as useConnectionStatus() does. */
  status: Status;
  subscribePrices(symbols: string[], options?: SubscribeOptions): Subscription;
  unsubscribePrices(symbols: string[]): void;
}
export declare function useStream(stream: string, opts?: SubscribeOptions & { limit?: number }): StreamResult;
/** Without a stream: the seeds' StreamContext value. */
export declare function useStream(): StreamContextValue;

/** Prices by symbol; re-renders only when one of `symbols` changed. */
export declare function usePriceStream(symbols: string[]): { prices: Record<string, Price>; status: StreamState | null };
export declare function useOrders(): { orders: Order[]; status: StreamState | null };
/** The seeds' name for useOrders. */
export declare const useOrderStream: typeof useOrders;
export declare function usePositions(): { positions: Position[]; totalValue: number | null; status: StreamState | null };

export interface AlertsResult {
  /** Unacknowledged alerts, newest first. */
  alerts: Alert[];
  /** Acknowledge: `POST /api/alerts/{alertId}/ack`; the alert leaves the list here and in every other tab. */
  ack(alertId: string): Promise<AlertAck>;
  /** True until the history answered. */
  loading: boolean;
  error: TickwireApiError | null;
  status: StreamState | null;
}
/** The user's unacknowledged alerts (history + `alerts` stream); `limit` default 100. */
export declare function useAlerts(opts?: { limit?: number }): AlertsResult;

/** Coloured dot, state, transport, RTT, fallback reason, reconnect button, per-stream counts. */
export declare function ConnectionStatus(props: { showStreams?: boolean; className?: string }): ReactElement;
