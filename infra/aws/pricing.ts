/**
 * The cost estimate `up` prints before it asks: instances x on-demand hourly price x hours.
 *
 * A small table rather than the AWS Price List API: that API is one more permission, one more
 * endpoint and megabytes of JSON for a number the user only needs to the nearest dollar. The
 * prices are us-east-1 (N. Virginia) Linux on-demand list prices in USD per instance-hour,
 * as listed on https://aws.amazon.com/ec2/pricing/on-demand/ around PRICES_AS_OF (update both
 * together); the c5 prices also appear in AWS's example table in the EC2 Auto Scaling guide
 * ("Spot price per unit hour example": c5.2xlarge $0.34, c5.4xlarge $0.68), and have not
 * changed since the family launched. Other regions cost up to ~30% more,
 * storage (8 GB gp3 per instance, about $0.001/h) and traffic inside one zone are not counted.
 * A type missing from the table is reported as unknown, never guessed.
 */

export const PRICES_AS_OF = '2025-01';
export const PRICE_REGION = 'us-east-1';

export const ON_DEMAND_USD_PER_HOUR: Readonly<Record<string, number>> = {
  'c5.large': 0.085,
  'c5.xlarge': 0.17, // 4 vCPU: the paper's client machines ("10 4-core machines", paper §5, line 411)
  'c5.2xlarge': 0.34, // 8 vCPU: the paper's replicas (paper §5, line 411)
  'c5.4xlarge': 0.68,
  'c5.9xlarge': 1.53,
  'c6i.large': 0.085,
  'c6i.xlarge': 0.17,
  'c6i.2xlarge': 0.34,
  'm5.large': 0.096,
  'm5.xlarge': 0.192,
  'm5.2xlarge': 0.384,
  't3.micro': 0.0104,
  't3.medium': 0.0416,
};

export interface CostLine {
  readonly role: 'replica' | 'client';
  readonly instanceType: string;
  readonly count: number;
  /** Undefined when the type is not in the table. */
  readonly usdPerHour: number | undefined;
}

export interface CostEstimate {
  readonly lines: readonly CostLine[];
  /** How long the user expects to need the machines (`--hours`). */
  readonly expectedHours: number;
  /** The instances shut themselves down after this (`--ttl-hours`): the most the run can cost. */
  readonly ttlHours: number;
  /** Undefined when some type's price is unknown. */
  readonly expectedUsd: number | undefined;
  readonly ceilingUsd: number | undefined;
}

export function estimateCost(
  counts: { readonly replicas: number; readonly clients: number },
  types: { readonly replica: string; readonly client: string },
  hours: { readonly expected: number; readonly ttl: number },
): CostEstimate {
  const lines: CostLine[] = [
    { role: 'replica', instanceType: types.replica, count: counts.replicas, usdPerHour: ON_DEMAND_USD_PER_HOUR[types.replica] },
    { role: 'client', instanceType: types.client, count: counts.clients, usdPerHour: ON_DEMAND_USD_PER_HOUR[types.client] },
  ];
  const known = lines.every((l) => l.usdPerHour !== undefined);
  const perHour = lines.reduce((sum, l) => sum + l.count * (l.usdPerHour ?? 0), 0);
  return {
    lines,
    expectedHours: hours.expected,
    ttlHours: hours.ttl,
    expectedUsd: known ? perHour * hours.expected : undefined,
    ceilingUsd: known ? perHour * hours.ttl : undefined,
  };
}

function usd(x: number | undefined): string {
  return x === undefined ? 'unknown' : `$${x.toFixed(2)}`;
}

export function formatCostEstimate(estimate: CostEstimate): string[] {
  const out = estimate.lines.map(
    (l) =>
      `  ${String(l.count).padStart(3)} x ${l.instanceType.padEnd(12)} ${l.role.padEnd(7)} at ${l.usdPerHour === undefined ? 'unknown price' : `${usd(l.usdPerHour)}/h`}`,
  );
  out.push(
    `  estimated ${usd(estimate.expectedUsd)} for ${estimate.expectedHours} h; at most ${usd(estimate.ceilingUsd)} if left until the ${estimate.ttlHours} h TTL`,
  );
  out.push(`  (on-demand list prices, ${PRICE_REGION}, as of ${PRICES_AS_OF}; other regions up to ~30% more; storage and traffic not counted)`);
  const unknown = estimate.lines.filter((l) => l.usdPerHour === undefined).map((l) => l.instanceType);
  if (unknown.length > 0) out.push(`  no price on record for ${[...new Set(unknown)].join(', ')}: see https://aws.amazon.com/ec2/pricing/on-demand/`);
  return out;
}
