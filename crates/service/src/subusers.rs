//! Sub-users: accounts seen as the people who log in (UUCall agent seats).
//!
//! A sub-user is an account of the tenant, one entity with what SendCloud
//! and the telephony dialect call a sub-account: any of them with a password
//! can log in. [`Services::create_sub_user`] creates a seat: an account
//! whose charges draw on the tenant's wallets, stored with `user_type`
//! iFaxin (1) so that it gets no SendCloud API key, through the same checks
//! as any account (account limit, username and phone taken).
//!
//! Rules: a cancelled sub-user (access state 3) is never deleted and cannot
//! be changed any more (`Conflict`); cancelling one again is no change.
//! Disabling, cancelling and a new password end its sessions. Each call
//! that changes something leaves one operation log entry: `account.enable`
//! / `account.disable` / `account.cancel` when only the state changes,
//! `account.password` when only the password does, `account.update` (with
//! the fields named) otherwise.

use subledger_domain::access::{AppId, AppSet};
use subledger_domain::account::{AccessState, Department, Email, Extension, Funding, JobNumber, Password, PersonName, Phone, SeatNote, UserType, Username};
use subledger_domain::ids::{AccountId, RoleId};
use subledger_domain::oplog::{Operation, OperationKind};
use subledger_domain::paging::Page;
use subledger_storage::sessions as store_sessions;
use subledger_storage::subusers::{self as store_subusers, SeatChanges, SubUserQuery, SubUserRecord};
use subledger_storage::tenants as store_tenants;
use subledger_storage::{StorageError, UniqueKey, accounts as store_accounts};

use crate::access::effective;
use crate::accounts::{Account, NewAccountInput};
use crate::error::{Resource, ServiceError, ServiceResult};
use crate::roles::{grant_detail, grant_sets, role_in_tx};
use crate::secrets::hash_password;
use crate::tenants::Tenant;
use crate::{Change, Services, now_us};

/// A new sub-user (seat); every field already parsed.
#[derive(Debug, Clone)]
pub struct NewSubUser {
    pub username: Username,
    pub password: Password,
    pub person_name: Option<PersonName>,
    pub job_number: Option<JobNumber>,
    pub role: Option<RoleId>,
    /// Whether the role's application template applies (UUCall `roleEnble` 1).
    pub role_template: bool,
    pub extension: Option<Extension>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub department: Option<Department>,
    pub note: Option<SeatNote>,
}

/// Changes to a sub-user; `None` keeps a field.
#[derive(Debug, Clone, Default)]
pub struct SubUserChanges {
    pub person_name: Option<PersonName>,
    pub job_number: Option<JobNumber>,
    pub extension: Option<Extension>,
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    pub department: Option<Department>,
    pub note: Option<SeatNote>,
    /// `Some(None)` takes its role away.
    pub role: Option<Option<RoleId>>,
    pub role_template: Option<bool>,
    pub access: Option<AccessState>,
    pub password: Option<Password>,
}

/// Which sub-users a listing returns; every filter optional.
#[derive(Debug, Clone, Default)]
pub struct SubUserFilter {
    pub id: Option<AccountId>,
    /// Exact.
    pub username: Option<String>,
    /// Part of the person's name.
    pub person_name: Option<String>,
    /// Exact.
    pub job_number: Option<String>,
    pub extension: Option<i64>,
    /// Part of the role's name.
    pub role_name: Option<String>,
    pub access: Option<AccessState>,
}

/// A sub-user with its role's name.
#[derive(Debug, Clone)]
pub struct SubUserView {
    pub account: Account,
    pub role_name: Option<String>,
}

impl SubUserView {
    fn from_record(record: SubUserRecord) -> ServiceResult<SubUserView> {
        Ok(SubUserView { account: Account::from_record(record.account)?, role_name: record.role_name })
    }
}

/// Most sub-users one listing returns.
pub const SUB_USER_PAGE_MAX: i64 = 200;
/// Longest text filter looked at (longer matches nothing anyway, at a cost).
const FILTER_CHARS_MAX: usize = 100;

impl SubUserChanges {
    fn is_empty(&self) -> bool {
        self.person_name.is_none()
            && self.job_number.is_none()
            && self.extension.is_none()
            && self.email.is_none()
            && self.phone.is_none()
            && self.department.is_none()
            && self.note.is_none()
            && self.role.is_none()
            && self.role_template.is_none()
            && self.access.is_none()
            && self.password.is_none()
    }

    /// The operation this change is, and its particulars.
    fn operation(&self, username: &str) -> Operation {
        let mut fields: Vec<String> = [
            ("person_name", self.person_name.is_some()),
            ("job_number", self.job_number.is_some()),
            ("extension", self.extension.is_some()),
            ("email", self.email.is_some()),
            ("phone", self.phone.is_some()),
            ("department", self.department.is_some()),
            ("note", self.note.is_some()),
        ]
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(name, _)| name.to_owned())
        .collect();
        if let Some(role) = self.role {
            fields.push(role.map_or_else(|| "role=none".to_owned(), |r| format!("role={r}")));
        }
        if let Some(template) = self.role_template {
            fields.push(format!("role_template={}", u8::from(template)));
        }
        let only_access = fields.is_empty() && self.password.is_none();
        if let Some(access) = self.access {
            if only_access {
                let kind = match access {
                    AccessState::Enabled => OperationKind::AccountEnable,
                    AccessState::Disabled => OperationKind::AccountDisable,
                    AccessState::Cancelled => OperationKind::AccountCancel,
                };
                return Operation::new(kind, username);
            }
            fields.push(format!("access={}", access_name(access)));
        }
        if self.password.is_some() {
            if fields.is_empty() {
                return Operation::new(OperationKind::AccountPassword, username);
            }
            fields.push("password".to_owned());
        }
        Operation::new(OperationKind::AccountUpdate, username).with_detail(fields.join(", "))
    }
}

fn access_name(access: AccessState) -> &'static str {
    match access {
        AccessState::Enabled => "enabled",
        AccessState::Disabled => "disabled",
        AccessState::Cancelled => "cancelled",
    }
}

fn bounded<'a>(text: &'a Option<String>, field: &'static str) -> ServiceResult<Option<&'a str>> {
    match text.as_deref() {
        Some(text) if text.chars().count() > FILTER_CHARS_MAX => Err(ServiceError::Invalid { field, reason: format!("at most {FILTER_CHARS_MAX} characters") }),
        other => Ok(other.filter(|t| !t.is_empty())),
    }
}

impl Services {
    /// Creates a seat: a sub-user whose charges draw on the tenant's wallets.
    pub async fn create_sub_user(&self, tenant: &Tenant, new: NewSubUser, change: &Change) -> ServiceResult<Account> {
        let seat = SeatChanges {
            person_name: new.person_name.as_ref().map(PersonName::as_str),
            job_number: new.job_number.as_ref().map(JobNumber::as_str),
            extension: new.extension.map(Extension::get),
            department: new.department.as_ref().map(Department::as_str),
            note: new.note.as_ref().map(SeatNote::as_str),
            role: Some(new.role),
            role_template: Some(new.role_template),
            ..SeatChanges::default()
        };
        let input = NewAccountInput {
            username: new.username.clone(),
            user_type: UserType::IFaxin,
            phone: new.phone.clone(),
            email: new.email.clone(),
            company_name: None,
            company_url: None,
            password: Some(new.password.clone()),
            daily_quota: None,
            funding: Funding::Tenant,
        };
        Ok(self.insert_account(tenant, input, Some(seat), change).await?.account)
    }

    /// A page of the tenant's sub-users by id, with how many match.
    pub async fn sub_users(&self, tenant: &Tenant, filter: &SubUserFilter, page: Page) -> ServiceResult<(i64, Vec<SubUserView>)> {
        let query = SubUserQuery {
            id: filter.id,
            username: bounded(&filter.username, "username")?,
            person_name: bounded(&filter.person_name, "person_name")?,
            job_number: bounded(&filter.job_number, "job_number")?,
            extension: filter.extension,
            role_name: bounded(&filter.role_name, "role_name")?,
            access_state: filter.access.map(AccessState::code),
        };
        let (total, records) = store_subusers::list(&self.store, tenant.id, &query, page.offset, page.limit.min(SUB_USER_PAGE_MAX)).await?;
        Ok((total, records.into_iter().map(SubUserView::from_record).collect::<ServiceResult<_>>()?))
    }

    pub async fn sub_user(&self, tenant: &Tenant, id: AccountId) -> ServiceResult<SubUserView> {
        let record = store_subusers::get(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        SubUserView::from_record(record)
    }

    pub async fn update_sub_user(&self, tenant: &Tenant, id: AccountId, changes: SubUserChanges, change: &Change) -> ServiceResult<SubUserView> {
        if changes.is_empty() {
            return Err(ServiceError::Invalid { field: "changes", reason: "nothing to change".to_owned() });
        }
        // Hashed before the write lock is taken, behind the password gate.
        let password_hash = match &changes.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let now = now_us();
        let mut tx = self.store.begin_write().await?;
        // The tenant's lock, which deleting a role takes too, keeps an assigned role from vanishing.
        store_tenants::lock(&mut tx, tenant.id).await?.ok_or(ServiceError::NotFound(Resource::Tenant))?;
        let current = store_subusers::get_in_tx(&mut tx, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        if current.access_state == AccessState::Cancelled.code() {
            return Err(ServiceError::Conflict("the sub-user is cancelled and can no longer be changed"));
        }
        if let Some(Some(role)) = changes.role {
            role_in_tx(&mut tx, tenant, role).await?;
        }
        let seat = SeatChanges {
            person_name: changes.person_name.as_ref().map(PersonName::as_str),
            job_number: changes.job_number.as_ref().map(JobNumber::as_str),
            extension: changes.extension.map(Extension::get),
            email: changes.email.as_ref().map(Email::as_str),
            phone: changes.phone.as_ref().map(Phone::as_str),
            department: changes.department.as_ref().map(Department::as_str),
            note: changes.note.as_ref().map(SeatNote::as_str),
            role: changes.role,
            role_template: changes.role_template,
            funding: None,
            access_state: changes.access.map(AccessState::code),
            password_hash: password_hash.as_deref(),
        };
        store_subusers::update_seat(&mut tx, tenant.id, id, &seat, now).await.map_err(|e| match e {
            StorageError::UniqueViolation { key: UniqueKey::AccountPhone, .. } => ServiceError::PhoneTaken,
            other => other.into(),
        })?;
        if changes.access == Some(AccessState::Cancelled) {
            // A cancelled seat pays no fee for any day after it.
            crate::seats::end_subscriptions(&mut tx, tenant, id, now).await?;
        }
        if changes.password.is_some() || matches!(changes.access, Some(AccessState::Disabled | AccessState::Cancelled)) {
            store_sessions::end_all_of(&mut tx, id, now).await?;
        }
        change.commit(tx, tenant.id, changes.operation(&current.username)).await?;
        self.sub_user(tenant, id).await
    }

    /// Cancels a sub-user: it can no longer log in or be charged, its
    /// sessions end, and it stays for its history. Cancelling it again is no change.
    pub async fn cancel_sub_user(&self, tenant: &Tenant, id: AccountId, change: &Change) -> ServiceResult<()> {
        match self.update_sub_user(tenant, id, SubUserChanges { access: Some(AccessState::Cancelled), ..SubUserChanges::default() }, change).await {
            Err(ServiceError::Conflict(_)) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// What a sub-user may do now: its role's template (when it applies),
    /// plus its grants, minus its revocations.
    pub async fn user_apps(&self, tenant: &Tenant, id: AccountId) -> ServiceResult<AppSet> {
        store_accounts::username_of(&self.store, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        Ok(effective(&store_subusers::grant_rows(&self.store, id).await?))
    }

    /// Grants a sub-user `grant` and revokes `revoke` (each with its
    /// subtree), on top of its role; what it may do after.
    pub async fn set_user_apps(&self, tenant: &Tenant, id: AccountId, grant: &[AppId], revoke: &[AppId], change: &Change) -> ServiceResult<AppSet> {
        let (granted, revoked) = grant_sets(grant, revoke)?;
        let rows: Vec<(AppId, bool)> = granted.leaf_ids().into_iter().map(|app| (app, true)).chain(revoked.leaf_ids().into_iter().map(|app| (app, false))).collect();
        let mut tx = self.store.begin_write().await?;
        let account = store_subusers::get_in_tx(&mut tx, tenant.id, id).await?.ok_or(ServiceError::NotFound(Resource::Account))?;
        store_subusers::set_grants(&mut tx, id, &rows).await?;
        change.commit(tx, tenant.id, Operation::new(OperationKind::AccountGrants, account.username.as_str()).with_detail(grant_detail(grant, revoke))).await?;
        self.user_apps(tenant, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_its_operation() {
        let state = |access| SubUserChanges { access: Some(access), ..SubUserChanges::default() };
        assert_eq!(state(AccessState::Disabled).operation("amy").kind, OperationKind::AccountDisable);
        assert_eq!(state(AccessState::Enabled).operation("amy").kind, OperationKind::AccountEnable);
        assert_eq!(state(AccessState::Cancelled).operation("amy").kind, OperationKind::AccountCancel);
        let password = SubUserChanges { password: Some(Password::parse("abc123").unwrap()), ..SubUserChanges::default() };
        assert_eq!(password.operation("amy").kind, OperationKind::AccountPassword);
        let mixed = SubUserChanges { note: Some(SeatNote::parse("n").unwrap()), role: Some(None), access: Some(AccessState::Disabled), ..password };
        let operation = mixed.operation("amy");
        assert_eq!((operation.kind, operation.detail.as_str()), (OperationKind::AccountUpdate, "note, role=none, access=disabled, password"));
        assert!(SubUserChanges::default().is_empty() && !mixed.is_empty());
    }
}
