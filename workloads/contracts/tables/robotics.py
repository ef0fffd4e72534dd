"""The surgical-robotics domain: a node's robot fleet, its procedures, outcomes, maintenance
and high-frequency telemetry, in the node's `surgical_robotics` dataset.

Model of the seed's "Medical Robotics Surgery Data Platform" (robot 1-N procedures, procedure
1-N telemetry samples, procedure 1-1 outcome, robot 1-N maintenance logs). The vocabularies
below (models, procedure types, tools, complications) are the columns' public levels: the
generator draws from them and every node's aggregates report the same cells.
"""

from __future__ import annotations

from workloads.contracts.schema import (
    Column,
    Domain,
    ExternalParquet,
    FieldType,
    ForeignKey,
    Mode,
    Partitioning,
    Role,
    Table,
    View,
)

# robot model -> manufacturer (10 models from 7 manufacturers)
ROBOT_MODELS: dict[str, str] = {
    "da Vinci Xi": "Intuitive Surgical",
    "da Vinci X": "Intuitive Surgical",
    "da Vinci Si": "Intuitive Surgical",
    "Versius": "CMR Surgical",
    "ROSA Knee": "Zimmer Biomet",
    "ROSA Brain": "Zimmer Biomet",
    "Mako": "Stryker",
    "Senhance": "Asensus Surgical",
    "Hugo RAS": "Medtronic",
    "Monarch": "Johnson & Johnson MedTech",
}
MANUFACTURERS = tuple(dict.fromkeys(ROBOT_MODELS.values()))

# procedure category -> its procedure types (27 types in 6 categories)
PROCEDURE_TYPES: dict[str, tuple[str, ...]] = {
    "urological": (
        "Radical Prostatectomy", "Partial Nephrectomy", "Radical Nephrectomy", "Pyeloplasty",
        "Radical Cystectomy",
    ),
    "gynecological": (
        "Hysterectomy", "Myomectomy", "Sacrocolpopexy", "Ovarian Cystectomy",
        "Endometriosis Excision",
    ),
    "cardiac": (
        "Mitral Valve Repair", "Coronary Artery Bypass", "Atrial Septal Defect Repair",
        "Cardiac Tumor Resection",
    ),
    "thoracic": ("Lobectomy", "Segmentectomy", "Thymectomy", "Esophagectomy"),
    "general": (
        "Cholecystectomy", "Inguinal Hernia Repair", "Colectomy", "Gastric Bypass",
        "Nissen Fundoplication",
    ),
    "orthopedic": (
        "Total Knee Arthroplasty", "Partial Knee Arthroplasty", "Total Hip Arthroplasty",
        "Spinal Fusion",
    ),
}
PROCEDURE_CATEGORIES = tuple(PROCEDURE_TYPES)
CATEGORY_OF_TYPE = {t: c for c, types in PROCEDURE_TYPES.items() for t in types}

TOOLS = (
    "grasper", "needle_driver", "monopolar_scissors", "bipolar_forceps", "stapler",
    "clip_applier", "suction_irrigator", "bone_burr",
)
# An empty complications list means none; these are the levels of its elements.
COMPLICATIONS = (
    "minor bleeding", "infection", "prolonged recovery", "organ injury", "adhesions",
    "nerve damage", "urinary retention", "ileus",
)
ROBOT_STATUSES = ("operational", "maintenance", "retired")
PROCEDURE_STATUSES = ("completed", "in_progress", "aborted", "cancelled")
PERFORMED_STATUSES = ("completed", "aborted")  # the patient was operated on: outcome exists
SUCCESS_STATUSES = ("successful", "complicated", "failed")
MAINTENANCE_TYPES = ("routine", "emergency", "upgrade", "calibration")
GENDERS = ("female", "male")

# Columns unique besides the primary key (enforced locally, checked in SQL by the tests).
UNIQUE_COLUMNS: dict[str, tuple[str, ...]] = {
    "surgical_robots": ("robot_serial_number",),
    "procedure_outcomes": ("procedure_id",),
}

ROBOTICS_DATASET = "surgical_robotics"
TELEMETRY_PREFIX = "robotics/telemetry/"


def _id(name: str, what: str) -> Column:
    return Column(name, "STRING", "REQUIRED", what, role="identifier")


def _ts(name: str, what: str, mode: Mode = "REQUIRED") -> Column:
    return Column(name, "TIMESTAMP", mode, what, role="timestamp")


def _category(name: str, levels: tuple[str, ...], what: str, *, releasable: bool = True) -> Column:
    return Column(name, "STRING", "REQUIRED", what, role="category", levels=levels,
                  releasable=releasable)


def _measure(name: str, type_: FieldType, unit: str, bounds: tuple[float, float], what: str,
             *, role: Role = "covariate", mode: Mode = "REQUIRED",
             releasable: bool = True) -> Column:
    return Column(name, type_, mode, what, role=role, unit=unit, bounds=bounds,
                  releasable=releasable)


SURGICAL_ROBOTS = Table(
    name="surgical_robots",
    description="One row per robot of the node's fleet, its state as of the data's snapshot.",
    columns=(
        _id("robot_id", "Node-prefixed robot id, e.g. US-R0001"),
        Column("robot_serial_number", "STRING", "REQUIRED", "Manufacturer serial, unique",
               role="identifier"),
        _category("robot_model", tuple(ROBOT_MODELS), "Robot model"),
        _category("manufacturer", MANUFACTURERS, "Maker of the model"),
        Column("installation_date", "DATE", "REQUIRED", "Installed at its facility",
               role="timestamp"),
        Column("facility_id", "STRING", "REQUIRED", "Facility id, e.g. US-F01", role="identifier"),
        Column("facility_name", "STRING", "REQUIRED", "Facility name (fictional)", role="text"),
        _category("status", ROBOT_STATUSES,
                  "State at the snapshot: under maintenance if a maintenance window covers it"),
        Column("retired_date", "DATE", "NULLABLE", "Day it stopped operating; NULL unless retired",
               role="timestamp"),
        Column("last_maintenance_date", "DATE", "NULLABLE",
               "Latest maintenance_date in robot_maintenance_logs; NULL if none", role="timestamp"),
        _measure("total_procedures", "INTEGER", "1", (0, 100_000),
                 "Procedures performed (completed or aborted) in surgical_procedures"),
        Column("firmware_version", "STRING", "REQUIRED", "Firmware at the snapshot", role="text"),
        _ts("created_at", "Row created"),
        _ts("updated_at", "Row last updated (the snapshot time)"),
    ),
    primary_key=("robot_id",),
)

SURGICAL_PROCEDURES = Table(
    name="surgical_procedures",
    description=(
        "One row per scheduled procedure on a robot. Performed procedures (completed, aborted) "
        "have an end time, telemetry and an outcome; cancelled ones have none of them."
    ),
    columns=(
        _id("procedure_id", "Node-prefixed procedure id in start-time order, e.g. US-P000001"),
        _id("robot_id", "The robot (surgical_robots)"),
        _category("procedure_type", tuple(CATEGORY_OF_TYPE), "Procedure type"),
        _category("procedure_category", PROCEDURE_CATEGORIES, "Category of the type"),
        _ts("start_time", "Scheduled (cancelled) or actual start, in business hours"),
        _ts("end_time", "Actual end; NULL unless performed", "NULLABLE"),
        _measure("duration_minutes", "FLOAT", "min", (0.0, 720.0),
                 "end_time - start_time in minutes; NULL unless performed", mode="NULLABLE"),
        _id("surgeon_id", "Surgeon id, e.g. US-S001"),
        Column("surgeon_name", "STRING", "REQUIRED", "Surgeon name (fictional)", role="text"),
        _id("patient_id", "The node's own patient (patient_genomic_data.patient_id)"),
        _measure("patient_age", "INTEGER", "a", (0, 120),
                 "The patient's age (patient_genomic_data.age)"),
        _category("patient_gender", GENDERS, "Patient's sex, consistent across procedures"),
        _measure("complexity_score", "FLOAT", "1", (1.0, 5.0), "Case complexity"),
        _category("status", PROCEDURE_STATUSES,
                  "completed, aborted (stopped early), cancelled (never started); in_progress "
                  "only in live feeds (a generated fleet is a snapshot after its window)"),
        _ts("created_at", "Row created (booking time)"),
    ),
    primary_key=("procedure_id",),
    foreign_keys=(ForeignKey(("robot_id",), "surgical_robots", ("robot_id",)),),
    partitioning=Partitioning("start_time", "MONTH"),
    clustering=("robot_id",),
)

PROCEDURE_OUTCOMES = Table(
    name="procedure_outcomes",
    description=(
        "One row per performed procedure (status completed or aborted; none for cancelled): "
        "the patient was operated on, so there is an outcome."
    ),
    columns=(
        _id("outcome_id", "Node-prefixed outcome id, e.g. US-O000001"),
        _id("procedure_id", "The procedure (unique: one outcome per procedure)"),
        _category("success_status", SUCCESS_STATUSES,
                  "failed if aborted or a severe complication, complicated if any, else "
                  "successful", releasable=True),
        _measure("blood_loss_ml", "FLOAT", "mL", (0.0, 5000.0), "Estimated blood loss",
                 role="outcome"),
        Column("complications", "STRING", "REPEATED",
               "Complications (levels below); empty means none", role="category",
               levels=COMPLICATIONS),
        _measure("hospital_stay_days", "INTEGER", "d", (0, 60), "Length of stay", role="outcome"),
        Column("readmission_30day", "BOOLEAN", "REQUIRED", "Readmitted within 30 days",
               role="outcome"),
        _measure("patient_satisfaction_score", "INTEGER", "1", (1, 10), "Patient satisfaction",
                 role="outcome"),
        Column("surgeon_notes", "STRING", "NULLABLE", "Free text", role="text"),
        _measure("recovery_score", "INTEGER", "1", (1, 100), "Recovery score",
                 role="outcome"),
        Column("follow_up_required", "BOOLEAN", "REQUIRED", "Follow-up visit needed",
               role="outcome"),
        _ts("created_at", "Row created"),
        _ts("updated_at", "Row last updated"),
    ),
    primary_key=("outcome_id",),
    foreign_keys=(ForeignKey(("procedure_id",), "surgical_procedures", ("procedure_id",)),),
)

ROBOT_MAINTENANCE_LOGS = Table(
    name="robot_maintenance_logs",
    description=(
        "One row per maintenance of a robot. The robot is down from started_at for "
        "downtime_hours; no procedure overlaps that window. Emergency maintenance follows an "
        "equipment fault during the procedure named in trigger_procedure_id."
    ),
    columns=(
        _id("maintenance_id", "Node-prefixed id, e.g. US-M00001"),
        _id("robot_id", "The robot (surgical_robots)"),
        Column("maintenance_date", "DATE", "REQUIRED", "Day it started", role="timestamp"),
        _ts("started_at", "When the robot went down"),
        _category("maintenance_type", MAINTENANCE_TYPES, "Kind of maintenance"),
        _id("technician_id", "Technician id, e.g. US-T01"),
        Column("technician_name", "STRING", "REQUIRED", "Technician name (fictional)", role="text"),
        Column("issues_found", "STRING", "NULLABLE", "What was found", role="text"),
        Column("actions_taken", "STRING", "REQUIRED", "What was done", role="text"),
        Column("parts_replaced", "STRING", "REPEATED", "Parts replaced; empty if none",
               role="text"),
        _measure("downtime_hours", "FLOAT", "h", (0.0, 240.0), "Hours the robot was down"),
        Column("next_maintenance_date", "DATE", "REQUIRED", "Next planned maintenance",
               role="timestamp"),
        _measure("cost", "FLOAT", "[currency]", (0.0, 500_000.0),
                 "Cost in the profile's currency"),
        Column("trigger_procedure_id", "STRING", "NULLABLE",
               "For emergency maintenance: the procedure during which the fault occurred",
               role="identifier"),
        _ts("created_at", "Row created"),
    ),
    primary_key=("maintenance_id",),
    foreign_keys=(
        ForeignKey(("robot_id",), "surgical_robots", ("robot_id",)),
        ForeignKey(("trigger_procedure_id",), "surgical_procedures", ("procedure_id",)),
    ),
)


def _signal(name: str, unit: str, bounds: tuple[float, float], what: str) -> Column:
    return Column(name, "FLOAT", "REQUIRED", what, role="covariate", unit=unit, bounds=bounds)


PROCEDURE_TELEMETRY = Table(
    name="procedure_telemetry",
    description=(
        "Robot telemetry sampled at a fixed rate (1-30 Hz) during each performed procedure. "
        "In the cloud: Parquet files under robotics/telemetry/date=YYYY-MM-DD/ of the node's "
        "results bucket, an external table; locally: a warehouse table with the same columns."
    ),
    columns=(
        Column("telemetry_id", "INTEGER", "REQUIRED",
               "procedure ordinal * 10^7 + sample index: unique, stable for a seed",
               role="identifier"),
        _id("procedure_id", "The procedure (surgical_procedures)"),
        _ts("timestamp", "Sample time"),
        _signal("arm_position_x", "mm", (-400.0, 400.0), "Tool-tip position, x"),
        _signal("arm_position_y", "mm", (-400.0, 400.0), "Tool-tip position, y"),
        _signal("arm_position_z", "mm", (0.0, 500.0), "Tool-tip position, z (height)"),
        _signal("arm_rotation", "deg", (-180.0, 180.0), "Wrist rotation"),
        Column("tool_type", "STRING", "REQUIRED", "Tool mounted in this phase", role="category",
               levels=TOOLS),
        _signal("grip_pressure", "N", (0.0, 30.0), "Grip force of the tool jaws"),
        _signal("tremor_compensation", "%", (0.0, 100.0), "Share of hand tremor filtered out"),
        _signal("camera_zoom", "1", (1.0, 10.0), "Endoscope zoom factor"),
        _signal("camera_angle", "deg", (-90.0, 90.0), "Endoscope tilt"),
        _signal("force_feedback_x", "N", (-40.0, 40.0), "Tissue reaction force, x"),
        _signal("force_feedback_y", "N", (-40.0, 40.0), "Tissue reaction force, y"),
        _signal("force_feedback_z", "N", (-40.0, 40.0), "Tissue reaction force, z"),
        _signal("system_temperature", "Cel", (15.0, 90.0), "Controller temperature"),
        _signal("power_consumption", "W", (0.0, 6000.0), "Electrical power drawn"),
        Column("date", "DATE", "REQUIRED",
               "UTC day of the sample: the Hive partition key (date=YYYY-MM-DD in the object "
               "path, not stored inside the Parquet files)", role="timestamp"),
    ),
    primary_key=("telemetry_id",),
    foreign_keys=(ForeignKey(("procedure_id",), "surgical_procedures", ("procedure_id",)),),
    external=ExternalParquet(bucket="results", prefix=TELEMETRY_PREFIX,
                             hive_partition_keys=("date",)),
)

# -- aggregate views (BigQuery standard SQL; `{dataset}` is this domain's dataset) ----------

COMPLICATIONS_BY_MODEL_CATEGORY = View(
    name="complications_by_model_category",
    description=(
        "Performed procedures, those with at least one complication and failed ones, by robot "
        "model, procedure category and the procedure's rank among its patient's performed "
        "procedures (1 = first): the cells of the federated complication rate; summing ranks "
        "up to m bounds what one patient contributes (m per measure) for differential privacy."
    ),
    sql=(
        "SELECT r.robot_model, p.procedure_category, p.patient_rank, COUNT(*) AS procedures, "
        "COUNTIF(ARRAY_LENGTH(o.complications) > 0) AS with_complications, "
        "COUNTIF(o.success_status = 'failed') AS failed "
        "FROM (SELECT procedure_id, robot_id, procedure_category, ROW_NUMBER() OVER "
        "(PARTITION BY patient_id ORDER BY start_time, procedure_id) AS patient_rank "
        "FROM {dataset}.surgical_procedures WHERE status IN ('completed', 'aborted')) AS p "
        "JOIN {dataset}.surgical_robots AS r ON r.robot_id = p.robot_id "
        "JOIN {dataset}.procedure_outcomes AS o ON o.procedure_id = p.procedure_id "
        "GROUP BY r.robot_model, p.procedure_category, p.patient_rank"
    ),
)

ROBOT_UTILIZATION = View(
    name="robot_utilization",
    description="Per robot: performed procedures, operating hours, maintenance count and hours.",
    sql=(
        "SELECT r.robot_id, r.robot_model, r.facility_id, r.status, "
        "COALESCE(p.performed, 0) AS performed_procedures, "
        "COALESCE(p.operating_hours, 0) AS operating_hours, "
        "COALESCE(m.maintenances, 0) AS maintenances, "
        "COALESCE(m.downtime_hours, 0) AS downtime_hours "
        "FROM {dataset}.surgical_robots AS r "
        "LEFT JOIN (SELECT robot_id, COUNT(*) AS performed, SUM(duration_minutes) / 60 "
        "AS operating_hours FROM {dataset}.surgical_procedures "
        "WHERE status IN ('completed', 'aborted') GROUP BY robot_id) AS p "
        "ON p.robot_id = r.robot_id "
        "LEFT JOIN (SELECT robot_id, COUNT(*) AS maintenances, SUM(downtime_hours) "
        "AS downtime_hours FROM {dataset}.robot_maintenance_logs GROUP BY robot_id) AS m "
        "ON m.robot_id = r.robot_id"
    ),
)

TELEMETRY_BY_PROCEDURE = View(
    name="telemetry_by_procedure",
    description=(
        "Per procedure: samples, peak tissue force, peak grip, peak and mean temperature, "
        "mean power: the telemetry summarised next to the procedure's outcome."
    ),
    sql=(
        "SELECT procedure_id, COUNT(*) AS samples, "
        "MAX(SQRT(force_feedback_x * force_feedback_x + force_feedback_y * force_feedback_y "
        "+ force_feedback_z * force_feedback_z)) AS peak_force_n, "
        "MAX(grip_pressure) AS peak_grip_n, MAX(system_temperature) AS peak_temperature_c, "
        "AVG(system_temperature) AS mean_temperature_c, AVG(power_consumption) AS mean_power_w "
        "FROM {dataset}.procedure_telemetry GROUP BY procedure_id"
    ),
)

ROBOTICS = Domain(
    name="robotics",
    dataset=ROBOTICS_DATASET,
    description=(
        "Surgical-robot fleet: robots, procedures (on the node's own patients), outcomes, "
        "maintenance and high-frequency telemetry, in creation order (parents first)."
    ),
    tables=(
        SURGICAL_ROBOTS, SURGICAL_PROCEDURES, PROCEDURE_OUTCOMES, ROBOT_MAINTENANCE_LOGS,
        PROCEDURE_TELEMETRY,
    ),
    views=(COMPLICATIONS_BY_MODEL_CATEGORY, ROBOT_UTILIZATION, TELEMETRY_BY_PROCEDURE),
)
