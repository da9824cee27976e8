use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use lakewave::cancel::Cancel;
use lakewave::instance::{EngineConfig, Instance, LoadOptions, Session, TableName, TableStatus};

pub struct Db {
    pub instance: Arc<Instance>,
    pub session: Session,
}

impl Db {
    pub fn new(options: &[(&str, &str)]) -> Db {
        Db::open(None, options)
    }

    /// An instance on a database file (`None`: in memory).
    pub fn open(path: Option<&std::path::Path>, options: &[(&str, &str)]) -> Db {
        let mut all = vec![("threads", "2")];
        all.extend_from_slice(options);
        let config = EngineConfig::from_options(all.iter().copied()).unwrap();
        let instance = Instance::open(config, path).unwrap();
        let session = instance.session().unwrap();
        Db { instance, session }
    }

    /// Another session on the same instance.
    pub fn other(&self) -> Db {
        Db {
            instance: Arc::clone(&self.instance),
            session: self.instance.session().unwrap(),
        }
    }

    /// Close the instance (releasing its database file).
    pub fn close(self) {
        self.instance.close();
    }

    /// Run statements, expecting them to work.
    pub fn exec(&self, text: &str) {
        if let Err(e) = self.sql(text) {
            panic!("{text}: {}", e.chain_message());
        }
    }

    pub fn sql(&self, text: &str) -> lakewave::Result<Vec<RecordBatch>> {
        let cancel = Cancel::new();
        let result = self
            .instance
            .block_on(&cancel, text, self.session.sql(text, &[], &cancel))?;
        self.instance.collect(&result, &cancel)
    }

    /// The query's rows rendered as text, one string per row.
    pub fn rows(&self, text: &str) -> Vec<String> {
        let batches = self
            .sql(text)
            .unwrap_or_else(|e| panic!("{text}: {}", e.chain_message()));
        render(&batches)
    }

    pub fn load(
        &self,
        name: &str,
        key: &[&str],
        batches: Vec<RecordBatch>,
    ) -> lakewave::Result<TableStatus> {
        let schema = batches[0].schema();
        self.load_with_schema(name, key, schema, batches, false)
    }

    pub fn load_with_schema(
        &self,
        name: &str,
        key: &[&str],
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        replace: bool,
    ) -> lakewave::Result<TableStatus> {
        let options = LoadOptions {
            name: TableName::parse(name, "main").unwrap(),
            primary_key: key.iter().map(|s| s.to_string()).collect(),
            partition_by: vec![],
            replace,
        };
        self.session.load_batches(
            &options,
            schema,
            batches.into_iter().map(Ok),
            "a test",
            &Cancel::new(),
            &mut |_| {},
        )
    }
}

pub fn render(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                arrow::util::display::ArrayFormatter::try_new(
                    c.as_ref(),
                    &arrow::util::display::FormatOptions::default().with_null("NULL"),
                )
                .unwrap()
            })
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out
}

/// `rows` rows of (id, category, amount) in batches of `batch` rows; id is
/// ascending so zone maps on it are tight.
pub fn orders(rows: usize, batch: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]));
    (0..rows)
        .step_by(batch)
        .map(|start| {
            let end = (start + batch).min(rows);
            let ids: Vec<i64> = (start as i64..end as i64).collect();
            let categories: Vec<Option<&str>> = ids
                .iter()
                .map(|i| match i % 4 {
                    0 => Some("books"),
                    1 => Some("games"),
                    2 => Some("music"),
                    _ => None,
                })
                .collect();
            let amounts: Vec<f64> = ids.iter().map(|i| (i % 100) as f64).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(categories)),
                    Arc::new(Float64Array::from(amounts)),
                ],
            )
            .unwrap()
        })
        .collect()
}
