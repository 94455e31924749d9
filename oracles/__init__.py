"""Omniclear oracle module: price sources, aggregation, RWA calendars, signed reports.

Pure core (no I/O, no clock, no asyncio; times are int milliseconds passed in):
- ``oracles.types``     Observation, Aggregate, FeedStatus, MarketStatus, to_fixed (8 decimals)
- ``oracles.calendar``  NyseCalendar (holidays by rule, early closes), METALS (23/5), FX (24/5)
- ``oracles.rules``     evaluate(config, state, observations, now_ms) -> Evaluation
- ``oracles.report``    PriceReport, Eip712Domain, ReportSigner, SignedPriceReport, verify_report
- ``oracles.twap``      twap(), settlement_report()
Adapters:
- ``oracles.sources``   PythHermesSource, CoinbaseTickerSource, ChainlinkSource, SimulatedVenue
- ``oracles.service``   OracleService (poll_once, start/stop, subscribe, on_status, snapshot,
                        halt/resume, settlement_report)
- ``oracles.store``     OracleStore (oracle_observation / oracle_aggregate / oracle_report)
- ``oracles.publisher`` ChainPublisher (OracleFeed.updateFromReport with a push policy)
- ``oracles.api``       add_price_routes(app, service)
- ``oracles.cli``       add_oracle_parser(subparsers)
- ``oracles.deploy``    deploy_oracle_contracts(w3, key, signers, threshold, feed_ids)
Invariant across all of it: a feed that cannot meet its rules goes stale, never wrong;
no price that is stored or signed is ever a float.
"""
