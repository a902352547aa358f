//! Notices (公告): a tenant's announcements to its sub-users.
//!
//! A notice without targets is for every sub-user; one with targets is for
//! those only (at most `NOTICE_TARGETS_MAX`, each an account of the same
//! tenant, else `Invalid`). A sub-user reading notices sees those two kinds;
//! the tenant sees all. A listing returns at most [`NOTICES_LIST_MAX`],
//! newest first.

use subledger_domain::access::{NOTICE_TARGETS_MAX, NoticeContent, NoticeTitle};
use subledger_domain::ids::{AccountId, NoticeId};
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_storage::notices::{self as store_notices, NoticeQuery, NoticeRecord};
use subledger_storage::subusers as store_subusers;

use crate::error::{Resource, ServiceError, ServiceResult};
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// Most notices one listing returns.
pub const NOTICES_LIST_MAX: i64 = 500;
/// Longest title filter looked at.
const TITLE_FILTER_CHARS_MAX: usize = 100;

/// A notice as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: NoticeId,
    pub title: String,
    pub content: String,
    /// The sub-users it is aimed at, by id; empty: everyone.
    pub targets: Vec<AccountId>,
    pub created_at_us: i64,
}

impl From<NoticeRecord> for Notice {
    fn from(record: NoticeRecord) -> Notice {
        Notice { id: record.id, title: record.title, content: record.content, targets: record.targets, created_at_us: record.created_at_us }
    }
}

#[derive(Debug, Clone)]
pub struct NewNotice {
    pub title: NoticeTitle,
    pub content: NoticeContent,
    pub targets: Vec<AccountId>,
}

/// Changes to a notice; `None` keeps a field (`Some(vec![])`: for everyone).
#[derive(Debug, Clone, Default)]
pub struct NoticeChanges {
    pub title: Option<NoticeTitle>,
    pub content: Option<NoticeContent>,
    pub targets: Option<Vec<AccountId>>,
}

/// Which notices a listing returns; every filter optional.
#[derive(Debug, Clone, Default)]
pub struct NoticeFilter {
    pub id: Option<NoticeId>,
    /// Part of the title.
    pub title: Option<String>,
    /// Only what this sub-user sees.
    pub visible_to: Option<AccountId>,
}

impl Services {
    /// Targets sorted and without repeats, each checked to be an account of the tenant.
    async fn checked_targets(&self, tenant: &Tenant, mut targets: Vec<AccountId>) -> ServiceResult<Vec<AccountId>> {
        targets.sort();
        targets.dedup();
        if targets.len() > NOTICE_TARGETS_MAX {
            return Err(ServiceError::Invalid { field: "targets", reason: format!("at most {NOTICE_TARGETS_MAX} sub-users") });
        }
        let existing = store_subusers::existing(&self.store, tenant.id, &targets).await?;
        if let Some(stranger) = targets.iter().find(|id| !existing.contains(id)) {
            return Err(ServiceError::Invalid { field: "targets", reason: format!("{stranger} is not a sub-user of this tenant") });
        }
        Ok(targets)
    }

    pub async fn create_notice(&self, tenant: &Tenant, new: NewNotice, change: &Change) -> ServiceResult<Notice> {
        // Accounts are never deleted, so targets checked before the write stay valid.
        let targets = self.checked_targets(tenant, new.targets).await?;
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        let id = store_notices::insert(&mut tx, tenant.id, new.title.as_str(), new.content.as_str(), now).await?;
        store_notices::set_targets(&mut tx, id, &targets).await?;
        let detail = format!("id={id} targets={}", targets.len());
        change.commit(tx, tenant.id, Operation::new(OperationKind::NoticeCreate, new.title.as_str()).with_detail(detail)).await?;
        Ok(Notice { id, title: new.title.as_str().to_owned(), content: new.content.as_str().to_owned(), targets, created_at_us: now })
    }

    /// The tenant's notices that match, newest first (at most [`NOTICES_LIST_MAX`]).
    pub async fn notices(&self, tenant: &Tenant, filter: &NoticeFilter) -> ServiceResult<Vec<Notice>> {
        let title = filter.title.as_deref().filter(|t| !t.is_empty());
        if title.is_some_and(|t| t.chars().count() > TITLE_FILTER_CHARS_MAX) {
            return Err(ServiceError::Invalid { field: "title", reason: format!("at most {TITLE_FILTER_CHARS_MAX} characters") });
        }
        let query = NoticeQuery { id: filter.id, title, visible_to: filter.visible_to };
        Ok(store_notices::list(&self.store, tenant.id, &query, NOTICES_LIST_MAX).await?.into_iter().map(Notice::from).collect())
    }

    /// One notice, if the tenant has it and (with `visible_to`) that sub-user sees it.
    pub async fn notice(&self, tenant: &Tenant, id: NoticeId, visible_to: Option<AccountId>) -> ServiceResult<Notice> {
        let query = NoticeQuery { id: Some(id), title: None, visible_to };
        store_notices::list(&self.store, tenant.id, &query, 1).await?.into_iter().next().map(Notice::from).ok_or(ServiceError::NotFound(Resource::Notice))
    }

    pub async fn update_notice(&self, tenant: &Tenant, id: NoticeId, changes: NoticeChanges, change: &Change) -> ServiceResult<Notice> {
        let targets = match changes.targets {
            Some(targets) => Some(self.checked_targets(tenant, targets).await?),
            None => None,
        };
        let mut tx = self.store.begin_write().await?;
        let (title, content) = (changes.title.as_ref().map(NoticeTitle::as_str), changes.content.as_ref().map(NoticeContent::as_str));
        if !store_notices::update(&mut tx, tenant.id, id, title, content, now_us()).await? {
            return Err(ServiceError::NotFound(Resource::Notice));
        }
        if let Some(targets) = &targets {
            store_notices::set_targets(&mut tx, id, targets).await?;
        }
        let detail =
            [title.map(|_| "title".to_owned()), content.map(|_| "content".to_owned()), targets.as_ref().map(|t| format!("targets={}", t.len()))].into_iter().flatten().collect::<Vec<_>>().join(", ");
        change.commit(tx, tenant.id, Operation::new(OperationKind::NoticeUpdate, format!("{id}")).with_detail(detail)).await?;
        self.notice(tenant, id, None).await
    }

    pub async fn delete_notice(&self, tenant: &Tenant, id: NoticeId, change: &Change) -> ServiceResult<()> {
        let mut tx = self.store.begin_write().await?;
        if !store_notices::delete(&mut tx, tenant.id, id).await? {
            return Err(ServiceError::NotFound(Resource::Notice));
        }
        change.commit(tx, tenant.id, Operation::new(OperationKind::NoticeDelete, format!("{id}"))).await
    }
}
