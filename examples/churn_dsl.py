"""The root example project (`mlforge.yaml`: 90-day churn on CDNOW) written with the Python DSL.

It defines the same project as the YAML: `tests/config/test_dsl.py` checks that both give an equal
spec (the data path aside, which is relative to this file's folder as a YAML spec's is to its own).

    MLFORGE_SPEC=examples/churn_dsl.py uv run mlforge validate
    uv run mlforge export --format yaml --spec examples/churn_dsl.py
"""

from datetime import date

from mlforge.dsl import (
    Aggregate,
    BlueGreen,
    ChurnLabel,
    Column,
    Dataset,
    Deployment,
    Drift,
    Entity,
    FeatureService,
    FeatureView,
    Gate,
    Infrastructure,
    Model,
    Monitoring,
    OnlineStore,
    Partitions,
    Project,
    Recency,
    Schedules,
    Source,
    Storage,
    Timestamp,
    Tracking,
    Training,
    Window,
)

customer = Entity("customer", join_key="customer_id", description="A CDNOW customer (zero-padded id).")

transactions = Dataset(
    "transactions",
    description="Every CDNOW purchase of the 1997-Q1 cohort.",
    source=Source("../data/cdnow/CDNOW_master.txt", format="whitespace"),
    timestamp=Timestamp("date", format="%Y%m%d"),
    entity="customer",
    columns={
        "customer_id": Column("string", nullable=False),
        "date": Column("date", nullable=False),
        "number_of_cds": Column("int", nullable=False, min=1, max=1000),
        "dollar_value": Column("float", nullable=False, min=0, max=10000),
    },
)

customer_activity = FeatureView(
    "customer_activity",
    description="Recency, frequency, monetary value and rolling spend per customer.",
    entity="customer",
    source="transactions",
    lookback_days=365,
    ttl_days=365,
    transformations=[
        Recency(),
        Aggregate(columns=["dollar_value", "number_of_cds"], functions=["count", "sum", "mean", "max"]),
        Window(columns=["dollar_value"], functions=["count", "sum"], windows_days=[30, 90, 180]),
    ],
)

churn = Model(
    "churn",
    description="XGBoost classifier of 90-day churn.",
    feature_service="churn_features",
    label=ChurnLabel(dataset="transactions", horizon_days=90),
    algorithm="xgboost",
    params={
        "n_estimators": 200,
        "max_depth": 4,
        "learning_rate": 0.05,
        "subsample": 0.9,
        "colsample_bytree": 0.9,
        "min_child_weight": 5,
    },
    training=Training(window_days=270, snapshot_step_days=7, min_train_snapshots=4, seed=7),
    gate=Gate(metric="auc", min=0.70, max_regression=0.005),
    retrain_cron="0 4 * * 1",  # weekly, Monday 04:00 in the project's timezone
)

project = Project(
    "churn",
    description="Will a CDNOW customer buy again in the next 90 days?",
    timezone="UTC",
    owners=["team:data-science"],
    partitions=Partitions(start=date(1997, 1, 1), end=date(1998, 6, 30), cadence="daily"),
    infrastructure=Infrastructure(
        state_dir=".mlforge",
        storage=Storage(root=None),
        online_store=OnlineStore(url="embedded"),
        tracking=Tracking(uri=None),
        executor="in_process",
    ),
    entities=[customer],
    datasets=[transactions],
    feature_views=[customer_activity],
    feature_services=[FeatureService("churn_features", features=["customer_activity:*"])],
    models=[churn],
    deployments=[Deployment("churn-api", model="churn", strategy=BlueGreen())],
    monitoring=[
        Monitoring(
            "churn",
            drift=Drift(threshold=0.5, method=None, reference_rows=20000),
            alert_thresholds={"auc": 0.70, "latency_p99_ms": 50},
        )
    ],
    schedules=Schedules(daily_refresh_cron="0 3 * * *", enabled=False),
)
